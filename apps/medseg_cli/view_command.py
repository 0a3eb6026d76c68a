"""`medseg view SCAN [--pred PRED_DIR] [--study STUDY_DIR] [--model MODEL_DIR]`: open the napari reading room."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "view",
        help="open a scan (or a prediction folder as a worklist) in napari for review",
        description="Opens napari with the scan, the Review/Segment and Activations docks; with --pred the "
        "`medseg predict` output folder opens as a worklist (most in need of review first); with --model "
        "the Segment dock has that model chosen. Needs the napari extra (pip install 'medseg[napari]').",
    )
    parser.add_argument("scan", type=Path, nargs="?", help="scan file or DICOM series folder "
                        "(with --pred: the input folder the predictions were made from)")
    parser.add_argument("--pred", type=Path, help="a `medseg predict` output folder")
    parser.add_argument("--study", type=Path, help="the study folder the predictions were made from: DICOM "
                        "series are found there again and shown by folder and series description (on screen "
                        "only; nothing written names them)")
    parser.add_argument("--model", type=Path, help="a model folder (model.yaml, weights.pt, model_card.json) "
                        "or the name of a shipped model (`medseg models`)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Open the viewer and block until it is closed."""
    import napari  # local: Qt is only needed by this command
    from medseg_napari.viewer_setup import set_up_viewer

    from medseg.errors import InputError
    from medseg.resources import resolve

    if args.model is not None:
        args.model = resolve("model", args.model)
    if args.scan is None and args.pred is None:
        raise InputError("(none)", "nothing to view", "give a scan, or --pred with a prediction folder")
    for path in (args.scan, args.pred, args.study, args.model):
        if path is not None and not path.exists():
            raise InputError(path, "does not exist", "check the path")
    viewer = napari.Viewer(title="medseg")
    set_up_viewer(viewer, args.scan, pred_dir=args.pred, model_dir=args.model, study=args.study)
    napari.run()
    return 0
