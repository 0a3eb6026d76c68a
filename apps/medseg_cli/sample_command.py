"""`medseg sample DEFINITION --out DIR`: build a bundled sample data set (no download)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "sample",
        help="build a sample data set from its definition (e.g. datasets/brain-tissue.yaml)",
        description="Write a Decathlon-layout data set built from installed packages; "
        "same definition and seed give the same files; a complete folder is left as it is.",
    )
    parser.add_argument("definition", type=Path, help="data set definition YAML in datasets/")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build (or confirm) the data set and print where its dataset.json is."""
    from medseg.data.build import build_sample

    dataset_json = build_sample(args.definition, args.out)
    print(f"sample data set ready: {dataset_json}")
    return 0
