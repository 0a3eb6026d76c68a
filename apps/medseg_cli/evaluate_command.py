"""`medseg evaluate`: score predictions against references, model beside the majority-class baseline.

    medseg evaluate --pred PRED --truth TRUTH [--out DIR] [--images DIR] [--probabilities DIR]
                    [--tolerance-mm 2.0] [--labels dataset.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted label maps against references (Dice, HD95, surface Dice, volume)",
        description="Match predictions (PRED/CASE.nii.gz or PRED/CASE/seg.nii.gz) with references "
        "(TRUTH/CASE.nii.gz); a `medseg predict` output is matched through its report.json (CASE is the input "
        "file's name, or a DICOM series' SeriesInstanceUID) and gives the class names. Score each case and class, "
        "and write metrics.csv, metrics.json, summary.md "
        "and PNG figures to --out. With probability maps (PRED/CASE/probabilities.nii.gz or --probabilities) "
        "also calibration (ECE, reliability diagram) and uncertainty quality (AUROC, volume CRPS).",
    )
    parser.add_argument("--pred", type=Path, required=True, help="folder of predicted label maps")
    parser.add_argument("--truth", type=Path, required=True, help="folder of reference label maps (e.g. labelsTr)")
    parser.add_argument("--out", type=Path, help="report folder (default: PRED/evaluation)")
    parser.add_argument("--images", type=Path, help="scans for the overlay figures (e.g. imagesTr)")
    parser.add_argument("--probabilities", type=Path, help="folder of (I, J, K, C) probability maps")
    parser.add_argument("--tolerance-mm", type=float, default=2.0, help="surface Dice tolerance in mm (default 2)")
    parser.add_argument("--labels", type=Path, metavar="DATASET_JSON",
                        help="take class names from a dataset.json (default: a predict output's report.json)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the Markdown table and where the report is."""
    from medseg.data.decathlon import read_datalist
    from medseg.errors import ConfigError
    from medseg.evaluation.report import evaluate_folders
    from medseg.evaluation.report_pairing import report_class_names

    if args.tolerance_mm <= 0:
        raise ConfigError(f"--tolerance-mm must be positive, got {args.tolerance_mm}")
    class_names = read_datalist(args.labels, check_files=False).labels if args.labels else report_class_names(args.pred)
    out = args.out or args.pred / "evaluation"
    result = evaluate_folders(args.pred, args.truth, out, class_names, args.tolerance_mm,
                              probabilities_dir=args.probabilities, images_dir=args.images)
    print(result.table, end="")
    if result.uncertainty is not None:
        print(f"ECE {result.uncertainty['ece']:.4f}, error-detection AUROC {result.uncertainty['error_auroc']:.3f}")
    print(f"{len(result.case_ids)} case(s) evaluated; report in {out}")
    return 0
