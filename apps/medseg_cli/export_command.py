"""`medseg export`: a model folder's network as TorchScript or ONNX, checked against PyTorch.

    medseg export MODEL_DIR --format torchscript|onnx [--out FILE] [--tolerance 1e-4]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a model folder's network to TorchScript or ONNX (checked against PyTorch)",
        description="Writes MODEL_DIR/model.ts (TorchScript) or MODEL_DIR/model.onnx (ONNX, dynamic batch and "
        "spatial axes where the network allows) and records it in MODEL_DIR/export.json. The export's logits "
        "on a sample window must match the PyTorch model's within --tolerance (max abs difference printed).",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                        help="a model folder (`medseg model-folder`)")
    parser.add_argument("--format", required=True, choices=("torchscript", "onnx"), dest="fmt")
    parser.add_argument("--out", type=Path, metavar="FILE", help="file to write (default: inside MODEL_DIR)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest accepted max abs difference of the logits (default 1e-4)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export and print the check."""
    from medseg.research.export import export_model

    result = export_model(args.model_dir, args.fmt, args.out, tolerance=args.tolerance)
    axes = "dynamic batch and spatial axes" if result.dynamic else f"fixed input {list(result.input_shape)}"
    print(f"{result.format} export {result.path}: max abs difference {result.max_abs_diff:.2e} in the logits "
          f"(probabilities {result.probability_diff:.2e}) vs PyTorch on a sample window {list(result.input_shape)} "
          f"({axes}); {result.seconds:.1f} s")
    from medseg.inference.model_folder import load_model_folder

    members = load_model_folder(args.model_dir).card.ensemble
    if members:
        print(f"note: {args.model_dir} is an ensemble; the export holds its own network only, not its members "
              f"({', '.join(m.name for m in members)}): `medseg predict --runtime {result.format} --no-ensemble` runs it")
    return 0
