"""Build a bundled sample data set: ``python datasets/build_sample.py DEFINITION OUT_DIR``.

The same as ``medseg sample DEFINITION OUT_DIR``; see ``medseg.data.build``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build, print the dataset.json path; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("definition", type=Path, help="a datasets/*.yaml definition")
    parser.add_argument("out_dir", type=Path, help="the data set folder to write")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("medseg") is None:
        # Run from a source checkout without `pip install .`: use the package next to this folder.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medseg.data.build import build_sample
    from medseg.errors import MedsegError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(build_sample(args.definition, args.out_dir))
    except MedsegError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
