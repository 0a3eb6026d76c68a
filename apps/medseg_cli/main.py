"""`medseg` entry point: parse, dispatch to one subcommand, turn medseg errors into one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from medseg import __version__
from medseg.errors import MedsegError
from medseg_cli import (
    calibrate_command,
    demo_command,
    ensemble_command,
    evaluate_command,
    export_command,
    info_command,
    listen_command,
    lr_find_command,
    model_folder_command,
    models_command,
    predict_command,
    sample_command,
    train_command,
    tune_command,
    view_command,
)

COMMANDS = (
    info_command, models_command, sample_command, train_command, model_folder_command, calibrate_command,
    ensemble_command, predict_command, evaluate_command, view_command, demo_command, tune_command,
    lr_find_command, export_command, listen_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="medseg", description="Medical-image segmentation: scans in, contours out."
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for run records
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except MedsegError as error:
        if args.debug:
            raise
        print(f"medseg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
