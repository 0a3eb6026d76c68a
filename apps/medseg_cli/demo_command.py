"""`medseg demo`: build the sample, train briefly, predict the test subjects, evaluate, write a report.

    medseg demo [--out demo-output] [--data data] [--pretrained MODEL] [--epochs N]
                [--definition brain-tissue] [--preset brain-tissue-unet]

Names are bundled resources (`medseg models`); paths work as well.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.demo import DEFAULT_DEFINITION, DEFAULT_EPOCHS, DEFAULT_PRESET


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="the whole job on the bundled sample: data, training, prediction, evaluation, report",
        description="Builds the brain-tissue sample, trains a small UNet briefly on CPU (or uses --pretrained), "
        "predicts the held-out test subjects, evaluates them beside the majority-class baseline and writes "
        "OUT/report.md with tables and figures. Rerunning reuses the data, the run and complete predictions.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="demo folder (default demo-output)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="where the sample is built (default data)")
    parser.add_argument("--pretrained", type=Path, metavar="MODEL",
                        help="use this model folder (or shipped model, e.g. brain-tissue-unet); no training")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"training epochs (default {DEFAULT_EPOCHS}: a few minutes on 2 cores)")
    parser.add_argument("--definition", type=Path, default=Path(DEFAULT_DEFINITION),
                        help=f"sample definition: bundled name or YAML (default {DEFAULT_DEFINITION})")
    parser.add_argument("--preset", type=Path, default=Path(DEFAULT_PRESET),
                        help=f"training preset: bundled name or YAML (default {DEFAULT_PRESET})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training config value (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; print the Dice table, timings and the napari command."""
    from medseg.demo import run_demo
    from medseg.errors import ConfigError

    if args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    result = run_demo(args.out, args.data, pretrained=args.pretrained, epochs=args.epochs,
                      definition=args.definition, preset=args.preset, overrides=args.set,
                      progress=not args.no_progress)
    for name, (model, baseline) in result.dice.items():
        print(f"Dice {name}: {model:.3f} (baseline {baseline:.3f})")
    if result.ece is not None:
        print(f"ECE on validation voxels: {result.ece[0]:.4f} before, {result.ece[1]:.4f} after temperature scaling")
    per_scan = "n/a" if result.seconds_per_scan is None else f"{result.seconds_per_scan:.2f} s"
    print(f"{per_scan} per scan; {result.seconds['total']:.0f} s in all; report: {result.report_path}")
    print(f"open the result in napari: {result.view_command}")
    return 0
