"""`medseg view SCAN|URL [--pred PRED_DIR] [--study STUDY_DIR] [--model MODEL_DIR] [--send-to ROOT_URL]`:
open the napari reading room.

A DICOMweb study URL (``http(s)://HOST/.../studies/<StudyInstanceUID>``) opens like a study folder:
it is retrieved (WADO-RS) into ``PRED_DIR/studies/`` with ``--pred`` (where ``medseg predict URL`` put
it, so nothing is fetched twice), otherwise into a temporary folder removed when the viewer closes.
``--send-to`` stores each case marked Corrected (its DICOM-SEG) into the study it came from.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
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
    parser.add_argument("scan", nargs="?", help="scan file, DICOM series folder or DICOMweb study URL "
                        "(with --pred: the input folder or study URL the predictions were made from)")
    parser.add_argument("--pred", type=Path, help="a `medseg predict` output folder")
    parser.add_argument("--study", type=Path, help="the study folder the predictions were made from: DICOM "
                        "series are found there again and shown by folder and series description (on screen "
                        "only; nothing written names them)")
    parser.add_argument("--model", type=Path, help="a model folder (model.yaml, weights.pt, model_card.json) "
                        "or the name of a shipped model (`medseg models`)")
    parser.add_argument("--send-to", metavar="ROOT_URL", default=None,
                        help="with --pred: store each DICOM case marked Corrected (its DICOM-SEG) into the PACS study "
                        "it came from, on this DICOMweb server (http(s)://HOST/.../dicom-web)")
    parser.add_argument("--credentials", type=Path, metavar="FILE", default=None,
                        help="JSON/YAML file with username and password, or token, for the DICOMweb server; "
                        "readable by you only (chmod 600); never printed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Open the viewer and block until it is closed."""
    import napari  # local: Qt is only needed by this command
    from medseg_napari.viewer_setup import set_up_viewer

    from medseg.errors import InputError
    from medseg.pacs.dicomweb import is_dicomweb_url
    from medseg.resources import resolve
    from medseg.review.study_url import open_study_url, review_sender

    if args.model is not None:
        args.model = resolve("model", args.model)
    if args.scan is None and args.pred is None:
        raise InputError("(none)", "nothing to view", "give a scan, or --pred with a prediction folder")
    if args.send_to and args.pred is None:
        raise InputError(args.send_to, "--send-to needs --pred (the prediction folder records each case's study)",
                         "give --pred OUT")
    with open_study_url(args.scan, args.pred, args.credentials) if is_dicomweb_url(args.scan or "") \
            else _local(args.scan) as scan:
        for path in (scan, args.pred, args.study, args.model):
            if path is not None and not Path(path).exists():
                raise InputError(path, "does not exist", "check the path")
        sender = review_sender(args.pred, args.send_to, args.credentials) if args.send_to else None
        viewer = napari.Viewer(title="medseg")
        if is_dicomweb_url(args.scan or "") and args.pred is None:  # the study as a worklist of its series
            set_up_viewer(viewer, None, pred_dir=scan, model_dir=args.model)
        else:
            set_up_viewer(viewer, scan, pred_dir=args.pred, model_dir=args.model, study=args.study, sender=sender)
        napari.run()
    return 0


@contextmanager
def _local(scan: str | None) -> Iterator[Path | None]:
    yield None if scan is None else Path(scan)
