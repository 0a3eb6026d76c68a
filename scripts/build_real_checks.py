#!/usr/bin/env python3
"""Build the real-scan checks: for each real T1 scan found offline, its image, brain mask and CSF/GM/WM reference.

Usage: scripts/build_real_checks.py --out DIR [--names robex-t1 itk-kmeans-t1] [--seed 0] [--force]
Writes DIR/<name>/{image,mask,reference,corrected}.nii.gz and manifest.json (see medseg.data.real_scans).
These scans are for checking models only: never train on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg.data.real_scans import SOURCES, RealScanMissing, build_real_checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--names", nargs="*", choices=sorted(SOURCES), help="scans to build (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mixture's subsample")
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest matches")
    args = parser.parse_args(argv)
    try:
        built = build_real_checks(args.out, tuple(args.names) if args.names else None, seed=args.seed, force=args.force)
    except RealScanMissing as error:
        print(f"build_real_checks: {error}", file=sys.stderr)
        return 2
    for files in built:
        manifest = json.loads(files.manifest.read_text())
        fractions = dict(zip(("csf", "gm", "wm"), manifest["reference"]["fractions"]))
        print(f"{files.name}: {files.folder}  shape {manifest['shape']}  spacing {manifest['spacing_mm']} mm  "
              f"mask {manifest['mask_volume_ml']} mL  fractions {fractions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
