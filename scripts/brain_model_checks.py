"""Shift checks of a brain-tissue model folder: Dice, brain leakage, calibration, uncertainty and time.

Usage:
    nice -n 19 .venv/bin/python scripts/brain_model_checks.py --model models/brain-tissue-unet \
        --out docs/model-checks/after [--quick] [--tta | --no-tta]

Writes OUT/checks.json (every number, the model, the git commit, the settings) and OUT/checks.md (one
table). Conditions and metric definitions: ``medseg/evaluation/shift_checks.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from medseg.evaluation.shift_checks import CheckSettings, run_checks, write_outputs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="model folder (model.yaml, weights.pt, ...)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checks.json and checks.md")
    parser.add_argument("--quick", action="store_true", help="one synthetic volume per kind instead of two")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="mirror test-time augmentation for every condition on or off (default: the card's)")
    parser.add_argument("--sample", default="data/brain-tissue", help="the bundled sample's folder")
    args = parser.parse_args(argv)

    settings = CheckSettings(quick=args.quick, tta=args.tta, synth_volumes=1 if args.quick else 2,
                             sample_dir=args.sample)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    results = run_checks(args.model, settings, repo=REPO, log=log)
    json_path, md_path = write_outputs(results, args.out)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {json_path} and {md_path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
