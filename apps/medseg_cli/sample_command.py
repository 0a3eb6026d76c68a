"""`medseg sample NAME|DEFINITION --out DIR`: build a bundled sample data set (no download).

NAME is a bundled definition (`medseg models` lists them: brain-tissue, ct-phantom); a path to a
definition YAML works as well (an existing path wins over a bundled name).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "sample",
        help="build a sample data set by name (e.g. brain-tissue) or from a definition YAML",
        description="Write a Decathlon-layout data set built from installed packages; "
        "same definition and seed give the same files; a complete folder is left as it is.",
    )
    parser.add_argument("definition", type=Path, metavar="NAME|DEFINITION",
                        help="a bundled definition name (brain-tissue, ct-phantom) or a definition YAML")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build (or confirm) the data set and print where its dataset.json is."""
    from medseg.data.build import build_sample
    from medseg.resources import resolve

    dataset_json = build_sample(resolve("dataset", args.definition), args.out)
    print(f"sample data set ready: {dataset_json}")
    return 0
