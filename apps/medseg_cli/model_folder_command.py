"""`medseg model-folder`: turn a training run into a model folder for inference.

    medseg model-folder RUN_DIR --out MODEL_DIR [--checkpoint best|last] [--name NAME] [--force] [--no-qc]

``medseg export-model`` is the old name, kept as a deprecated alias for one release (it was too
close to ``medseg export``, which writes TorchScript/ONNX files of a model folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "model-folder"
DEPRECATED_ALIAS = "export-model"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand and its deprecated alias."""
    for name in (NAME, DEPRECATED_ALIAS):
        deprecated = name == DEPRECATED_ALIAS
        parser = subparsers.add_parser(
            name,
            help=f"deprecated: use `medseg {NAME}`" if deprecated else
            "make a model folder (config, weights, model card) from a training run",
            description=("Deprecated alias of `medseg model-folder` (same arguments); it goes in the next release. "
                         if deprecated else "")
            + "Write MODEL_DIR/model.yaml, weights.pt (tensors only) and model_card.json (classes, colours, "
            "training facts, validation Dice vs the majority baseline, QC ranges from the training split). "
            "The folder appears complete or not at all.",
        )
        _add_arguments(parser)
        parser.set_defaults(run=run_deprecated if deprecated else run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by `medseg train`")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="model folder to create")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="best validation Dice (default) or the last epoch")
    parser.add_argument("--name", default="", help="model name for the card (default: the folder name)")
    parser.add_argument("--description", default="", help="a sentence or two for the model card")
    parser.add_argument("--intended-use", default="", metavar="TEXT",
                        help="who should use the model on which scans, for what (shown by `medseg models MODEL` "
                        "and on the model's name in the napari app)")
    parser.add_argument("--default-tta", action=argparse.BooleanOptionalAction, default=None,
                        help="the card asks for mirror test-time augmentation by default (`medseg predict --no-tta` "
                        "still switches it off); default off, or the folder's own setting for the same weights")
    parser.add_argument("--limitation", action="append", default=[], metavar="TEXT",
                        help="a known failure mode, with the numbers that show it (repeat for each); re-exporting "
                        "the same weights keeps the folder's description, intended use and limitations unless given")
    parser.add_argument("--largest-component", action="store_true",
                        help="keep only the largest connected component of each class at inference")
    parser.add_argument("--largest-foreground", action="store_true",
                        help="keep only the largest connected component of all foreground classes together "
                        "(one organ of several classes, e.g. brain tissue: drops tissue labelled on the scalp)")
    parser.add_argument("--refine-intensity", default="", metavar="CLASSES",
                        help="comma-separated class indices (e.g. 1,2,3) whose probabilities are refined against "
                        "each other by the scan's own intensities at its own resolution at inference")
    parser.add_argument("--bias-field", choices=("none", "em", "n4"), default="none",
                        help="with --refine-intensity: divide out the scan's smooth intensity drift before the "
                        "refinement fits one intensity model per class: em fits it inside that fit from each "
                        "class's residuals (keeps low tissue contrast; the shipped brain cards), n4 with N4 "
                        "inside the network's tissue (medseg.inference.bias_field)")
    parser.add_argument("--prior-weight", type=float, default=1.0, metavar="W",
                        help="with --refine-intensity: exponent in (0, 1] on the network's probabilities where the "
                        "refinement uses them as its prior; below 1 the scan's own intensities move tissue "
                        "boundaries further (the shipped brain UNet: 0.7, see its card); default 1")
    parser.add_argument("--stripped-background-odds", type=float, default=1.0, metavar="K",
                        help="on a scan judged skull-stripped (its signal lies within 8 mm of the network's tissue), "
                        "multiply the background's odds at its signal voxels by K in (0, 1] (the shipped "
                        "DeepMedic: 0.1, see its card); default 1 = off")
    parser.add_argument("--head-background-odds", type=float, default=1.0, metavar="K",
                        help="on a scan with the skull on, multiply the background's odds by K in [1, 4] before the "
                        "refinement: less tissue labelled outside the brain for a slightly tighter outline (the "
                        "shipped brain UNet: 1.25, see its card); default 1 = off")
    parser.add_argument("--foreground-opening-mm", type=float, default=0.0, metavar="MM",
                        help="with --largest-foreground: first cut tissue joined to the main structure through "
                        "bridges narrower than about twice this radius (e.g. 8 for a brain on a whole head: "
                        "mucosa under the frontal lobes); 0 = off")
    parser.add_argument("--force", action="store_true", help="replace a folder holding a different model")
    parser.add_argument("--search", type=Path, default=None, metavar="SEARCH_JSON",
                        help="the search.json of the `medseg tune` study this config came from (recorded in the card)")
    parser.add_argument("--no-qc", action="store_true",
                        help="skip the QC ranges (when the training data are not available)")


def run_deprecated(args: argparse.Namespace) -> int:
    """The old name: warn on stderr, then do the same."""
    print(f"medseg {DEPRECATED_ALIAS}: deprecated, use `medseg {NAME}` (same arguments); "
          "the old name goes in the next release", file=sys.stderr)
    return run(args)


def _classes(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> (1, 2, 3); ``""`` -> ()."""
    from medseg.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--refine-intensity: expected comma-separated class indices, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    """Make the folder and print where the model is and what it scored."""
    from medseg.inference.model_folder import export_model_folder, load_model_folder

    path = export_model_folder(
        args.run_dir, args.out, checkpoint=args.checkpoint, name=args.name, description=args.description,
        intended_use=args.intended_use, limitations=tuple(args.limitation), tta=args.default_tta,
        overwrite=args.force, qc_reference=not args.no_qc, largest_component=args.largest_component,
        search_json=args.search, largest_foreground=args.largest_foreground,
        refine_classes=_classes(args.refine_intensity), foreground_opening_mm=args.foreground_opening_mm,
        bias_field=args.bias_field, prior_weight=args.prior_weight,
        stripped_background_odds=args.stripped_background_odds, head_background_odds=args.head_background_odds,
    )
    card = load_model_folder(path).card
    training = card.training
    dice = training.get("val_dice_mean")
    baseline = training.get("baseline_dice_mean")
    scores = "no validation" if dice is None else f"validation Dice {dice:.4f}" + (
        f" (majority baseline {baseline:.4f})" if baseline is not None else "")
    print(f"model {path}: {card.network}, classes {', '.join(card.class_names)}; epoch "
          f"{training.get('validation_epoch') or training.get('epochs')}, {scores}")
    return 0
