"""`medseg lr-find`: learning-rate range test with a plot and a suggested rate.

    medseg lr-find --config PRESET|FILE [--out DIR] [--steps 200] [--start 1e-6] [--end 1] [--set key=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg_cli.config_arg import HELP as CONFIG_HELP, load_config_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test: loss against an exponentially growing lr, plot and suggestion",
        description="Trains on the training patients' patches while the learning rate grows exponentially "
        "from --start to --end; stops when the smoothed loss exceeds 4x its best. Writes DIR/lr_find.png "
        "(log-x), lr_find.csv and lr_find.json and prints the rate of steepest descent of the smoothed loss. "
        "The weights are not kept.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="PRESET|FILE", help=CONFIG_HELP)
    parser.add_argument("--out", type=Path, default=Path("lr-find"), metavar="DIR",
                        help="folder for the plot and table (default: ./lr-find)")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps (default 200)")
    parser.add_argument("--start", type=float, default=1e-6, help="first learning rate (default 1e-6)")
    parser.add_argument("--end", type=float, default=1.0, help="last learning rate (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.batch_size=4 (repeatable)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the test and print the suggestion."""
    from medseg.research.lr_find import lr_find

    config = load_config_arg(args.config, args.set)
    result = lr_find(config, args.out, steps=args.steps, start=args.start, end=args.end, progress=args.progress)
    print(f"suggested learning rate: {result.suggestion:.3g} (steepest descent of the smoothed loss; "
          f"minimum at {result.min_loss_lr:.3g}; {len(result.lrs)} steps, {result.stop_reason})")
    print(f"plot {result.plot}; table {result.table}")
    print(f"use it with: --set train.optimizer.lr={result.suggestion:.3g} "
          f"(for batch size {config.train.batch_size})")
    return 0
