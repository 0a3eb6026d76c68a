"""`medseg models [MODEL]`: the shipped models, training presets and sample data sets, by name; one model's card.

Each name works wherever a path does: ``medseg predict SCANS --model brain-tissue-unet``,
``medseg train --config brain-tissue-unet``, ``medseg sample brain-tissue --out DIR``.
``medseg models brain-tissue-unet`` (or a model folder's path) prints that model's card for people:
intended use, known limitations, networks, training and results (``medseg.inference.card_text``).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "models",
        help="list the shipped models (one line from each card), presets and sample data sets; "
        "with MODEL, print that model's card",
        description="Lists what ships with medseg, by the name the other commands accept in place of a path "
        "(a path that exists always wins over a bundled name). With MODEL (a shipped model's name or a model "
        "folder), prints its card as Markdown: intended use, known limitations, input and output, networks, "
        "post-processing, training, and results on its checks beside the model it was compared with. "
        "The whole folder is checked first; reading it never runs code from it.",
    )
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="a shipped model's name or a model folder: print its card")
    parser.add_argument("--paths", action="store_true", help="also print where each one is installed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the three lists, or one model's card."""
    from medseg.resources import bundled_models, bundled_names, bundled_path

    if args.model is not None:
        from medseg.inference.card_text import card_markdown
        from medseg.inference.model_folder import load_model_folder
        from medseg.resources import resolve

        path = resolve("model", args.model)
        print(card_markdown(load_model_folder(path)), end="")
        if args.paths:
            print(f"\n(folder: {path})")
        return 0

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
