"""Pair predictions with references (and optionally images and probabilities) by case id.

Layouts accepted (``CASE`` is the case id, compared exactly):

* predictions: ``PRED/CASE.nii.gz`` or ``PRED/CASE/seg.nii.gz``; a ``medseg predict`` output
  (``PRED/report.json``, pseudonymous ``PRED/case_<hash>/seg.nii.gz``) is paired through its report:
  ``CASE`` is the input file's stem, or a DICOM series' SeriesInstanceUID
  (``medseg.evaluation.report_pairing``);
* references: ``TRUTH/CASE.nii.gz`` (Decathlon ``labelsTr``);
* images: ``IMAGES/CASE.nii.gz`` or ``IMAGES/CASE_0000.nii.gz`` (Decathlon / nnU-Net ``imagesTr``);
* probabilities: ``PROB/CASE/probabilities.nii.gz`` or ``PROB/CASE.nii.gz``, a 4D NIfTI
  (I, J, K, C) with one channel per class; when no probability folder is given,
  ``probabilities.nii.gz`` beside the case's ``seg.nii.gz`` is used where it exists.

``.nii``, ``.nrrd`` and ``.mha`` are accepted wherever ``.nii.gz`` is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError
from medseg.evaluation.report_pairing import pair_through_report, read_report_cases
from medseg.types import source_name

LOGGER = logging.getLogger(__name__)
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
PREDICTION_FILE = "seg"
PROBABILITIES_FILE = "probabilities"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case.

    Attributes:
        case_id: the shared file (or folder) name without extension.
        prediction: the predicted label map.
        truth: the reference label map.
        image: the scan, for overlays (None when not found).
        probabilities: the (I, J, K, C) class probabilities (None when not found).
    """

    case_id: str
    prediction: Path
    truth: Path
    image: Path | None = None
    probabilities: Path | None = None


def _is_label_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(LABEL_SUFFIXES)


def _named(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<suffix>`` for the first suffix that exists."""
    for suffix in LABEL_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _check_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise InputError(folder, f"the {what} folder does not exist", f"give the folder that holds the {what}")


def prediction_files(pred_dir: str | Path) -> dict[str, Path]:
    """``{case id: file}`` of the predictions in ``pred_dir`` (both layouts)."""
    pred_dir = Path(pred_dir)
    _check_folder(pred_dir, "predictions")
    found: dict[str, Path] = {}
    for entry in sorted(pred_dir.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            path = _named(entry, PREDICTION_FILE)
            if path is not None:
                found[entry.name] = path
        elif _is_label_file(entry):
            case_id = source_name(entry)
            if case_id in found:
                raise InputError(
                    entry, f"case '{case_id}' has two predictions ({found[case_id].name} and {entry.name})",
                    "keep one prediction per case",
                )
            found[case_id] = entry
    return found


def match_cases(
    pred_dir: str | Path,
    truth_dir: str | Path,
    images_dir: str | Path | None = None,
    probabilities_dir: str | Path | None = None,
) -> list[CaseFiles]:
    """The cases found in both ``pred_dir`` and ``truth_dir``, sorted by case id (the reference's name).

    Predictions without a reference are skipped (logged); a reference without a
    prediction is an error, since leaving it out would flatter the model. A ``medseg predict``
    output is paired through its ``report.json`` (``medseg.evaluation.report_pairing``).

    Raises:
        InputError: a missing folder, no common case, or references without predictions.
    """
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    predictions = prediction_files(pred_dir)
    _check_folder(truth_dir, "reference labels")
    truths = {source_name(p): p for p in sorted(truth_dir.iterdir()) if _is_label_file(p)}
    if not truths:
        raise InputError(truth_dir, "holds no label files (.nii.gz, .nii, .nrrd, .mha)",
                         "give the folder of reference label maps (e.g. labelsTr)")
    report_cases = read_report_cases(pred_dir)
    if report_cases is not None:
        predictions = pair_through_report(report_cases, predictions, set(truths), pred_dir)
    missing = sorted(set(truths) - set(predictions))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(pred_dir, f"no prediction for {len(missing)} reference case(s): {shown}",
                         f"predict every case of {truth_dir}, or evaluate against a folder holding only "
                         "the predicted cases; predictions are CASE.nii.gz or CASE/seg.nii.gz")
    extra = sorted(set(predictions) - set(truths))
    if extra:
        LOGGER.warning("%d prediction(s) without a reference are not evaluated: %s", len(extra), ", ".join(extra[:5]))
    if images_dir is not None:
        _check_folder(Path(images_dir), "images")
    if probabilities_dir is not None:
        _check_folder(Path(probabilities_dir), "probabilities")
    cases = []
    for case_id in sorted(truths):
        image = None
        if images_dir is not None:
            image = _named(Path(images_dir), case_id) or _named(Path(images_dir), f"{case_id}_0000")
            if image is None:
                LOGGER.warning("no image for case %s in %s: its overlay has no background", case_id, images_dir)
        probabilities = _probabilities_file(case_id, predictions[case_id], pred_dir, probabilities_dir)
        cases.append(CaseFiles(case_id, predictions[case_id], truths[case_id], image, probabilities))
    return cases


def _probabilities_file(case_id: str, prediction: Path, pred_dir: Path,
                        probabilities_dir: str | Path | None) -> Path | None:
    if probabilities_dir is None:  # beside CASE/seg.nii.gz (a case folder), never beside PRED/CASE.nii.gz
        return _named(prediction.parent, PROBABILITIES_FILE) if prediction.parent != pred_dir else None
    folder = Path(probabilities_dir)
    inside = folder / case_id
    found = (_named(inside, PROBABILITIES_FILE) if inside.is_dir() else None) or _named(folder, case_id)
    if found is None:
        raise InputError(folder, f"no probabilities for case '{case_id}'",
                         f"expected {case_id}/probabilities.nii.gz or {case_id}.nii.gz")
    return found
