"""`medseg predict`: segment every scan under INPUT with a model folder.

    medseg predict INPUT --model MODEL --out OUT_DIR [--uncertainty] [--probabilities] [--tta]
                   [--workers N] [--device cpu|cuda] [--no-progress]

MODEL is a model folder or the name of a shipped one (`medseg models`: brain-tissue-unet).
Multi-process over machines or GPUs: ``torchrun --nproc_per_node N -m medseg predict ...``.
Exit status: 0 when every case succeeded (or was already complete), 1 when any case failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="segment a scan, a DICOM series or a folder of studies with a model folder",
        description="Every scan found under INPUT (searched recursively) is segmented; each gets "
        "OUT/<case_id>/ with seg.nii.gz on the source grid, seg.dcm (DICOM-SEG) for DICOM input, "
        "case.json and a completion record. OUT/report.json lists every case with its status, QC flags, "
        "volumes and timings. Case ids are pseudonymous. Rerunning skips complete cases and redoes the rest.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="scan file, DICOM series folder or study root")
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL",
                        help="model folder, or the name of a shipped model (`medseg models`)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--uncertainty", action="store_true", help="also write uncertainty.nii.gz (entropy, 0..1)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write probabilities.nii.gz (I, J, K, C) calibrated class probabilities")
    parser.add_argument("--tta", action="store_true", help="mirror test-time augmentation (slower)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="inference device (default cpu)")
    parser.add_argument("--runtime", choices=("torch", "torchscript", "onnx"), default="torch",
                        help="run the weights (torch) or the model folder's `medseg export` file (default torch)")
    parser.add_argument("--trust-export", action="store_true",
                        help="load the folder's TorchScript/ONNX export even if your medseg did not make it; loading "
                        "an export runs code from it, so only for folders from a source you trust")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the batch, print a summary and the failed cases; 1 when any case failed."""
    from medseg.inference.batch import run_batch
    from medseg.resources import resolve

    result = run_batch(args.input, resolve("model", args.model), args.out, uncertainty=args.uncertainty,
                       runtime=args.runtime, probabilities=args.probabilities, tta=args.tta, workers=args.workers,
                       device=args.device, progress=not args.no_progress, trust_export=args.trust_export)
    if result.report_path is None:  # torchrun rank > 0: rank 0 reports
        return 0 if result.succeeded else 1
    for case in result.cases:
        if case["status"] == "failed":
            print(f"FAILED {case['input']} -> {case['case_id']} at {case['stage']}: {case['reason']}")
    print(f"{result.count('ok')} predicted, {result.count('skipped-complete')} already complete, "
          f"{result.count('failed')} failed; report: {result.report_path}")
    return 0 if result.succeeded else 1
