"""`medseg calibrate`: fit temperature scaling on the validation split and store it in the model folder.

    medseg calibrate MODEL_DIR --data dataset.json --split RUN_DIR/split.json [--max-voxels N] [--device cpu]
    medseg calibrate MODEL_DIR --data dataset.json --split RUN/split.json \
        --data RUN/synth-val/dataset.json --split RUN/synth-val/split.json     (also the shifted volumes)
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit temperature scaling on the validation split; inference then applies it",
        description="Run the model on the VALIDATION patients of the split (never the test patients), fit one "
        "temperature T on sampled voxels' logits, and write MODEL_DIR/calibration.json with the expected "
        "calibration error before and after. An ensemble folder (`medseg ensemble`): this fits its own network's T; "
        "each member keeps the calibration it was added with (calibrate a member before adding it).",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                        help="a model folder (`medseg model-folder`)")
    parser.add_argument("--data", type=Path, required=True, metavar="DATASET_JSON", action="append",
                        help="the Decathlon dataset.json the model was trained on; repeat to add data sets "
                        "(e.g. a generator-trained run's RUN/synth-val/dataset.json)")
    parser.add_argument("--split", type=Path, required=True, metavar="SPLIT_JSON", action="append",
                        help="the split of each --data, in the same order (the training run's split.json; "
                        "its validation patients are used)")
    parser.add_argument("--max-voxels", type=int, default=200_000, help="voxels used for the fit (default 200000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the voxel subset")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate and print T and the ECE before and after."""
    from medseg.errors import ConfigError
    from medseg.inference.calibrate import calibrate_model

    if args.max_voxels < 1:
        raise ConfigError(f"--max-voxels must be positive, got {args.max_voxels}")
    result = calibrate_model(args.model_dir, args.data, args.split, max_samples=args.max_voxels, seed=args.seed,
                             device=args.device)
    print(f"temperature {result.temperature:.4f} from {result.voxels} voxels of {len(result.cases)} validation "
          f"case(s); ECE {result.ece_before:.4f} -> {result.ece_after:.4f}; written {result.path}")
    return 0
