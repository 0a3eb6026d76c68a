"""`medseg models`: the shipped models, training presets and sample data sets, by name.

Each name works wherever a path does: ``medseg predict SCANS --model brain-tissue-unet``,
``medseg train --config brain-tissue-unet``, ``medseg sample brain-tissue --out DIR``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "models",
        help="list the shipped models (one line from each card), presets and sample data sets",
        description="Lists what ships with medseg, by the name the other commands accept in place of a path "
        "(a path that exists always wins over a bundled name).",
    )
    parser.add_argument("--paths", action="store_true", help="also print where each one is installed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the three lists."""
    from medseg.resources import bundled_models, bundled_names, bundled_path

    models = bundled_models()
    width = max([len(m.name) for m in models] + [len(n) for n in bundled_names("preset") + bundled_names("dataset")])
    print("models (medseg predict SCANS --model NAME --out OUT):")
    for model in models:
        print(f"  {model.name:<{width}}  {model.summary}" + (f"  [{model.path}]" if args.paths else ""))
    print("presets (medseg train --config NAME --out RUN):")
    for name in bundled_names("preset"):
        print(f"  {name}" + (f"  [{bundled_path('preset', name)}]" if args.paths else ""))
    print("sample data sets (medseg sample NAME --out DIR):")
    for name in bundled_names("dataset"):
        print(f"  {name}" + (f"  [{bundled_path('dataset', name)}]" if args.paths else ""))
    return 0
