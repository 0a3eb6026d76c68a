"""Saving a review: corrected labels next to the prediction (never over it) and a JSON review log.

The log (``review_log.json`` in the worklist folder) holds ``{"version": 1, "reviews": [...]}``,
one entry per decision, appended in time order (a later entry for a case supersedes an
earlier one). Each entry: ``case_id``, ``decision`` (``"accepted"`` or ``"corrected"``),
``seconds`` (time spent on the case), ``classes_changed`` (names), ``voxels_changed``,
``reviewed_labels``, ``dicom_seg`` (a corrected DICOM case's DICOM-SEG, ``medseg.review.corrected_seg``)
and ``prediction`` (paths relative to the log's folder, or null), ``edits`` (brush, eraser, fill and
interpolation strokes) and ``time`` (UTC, ISO 8601). Files are written atomically. Nothing in the log
names a DICOM folder or file: cases are their pseudonymous ids, paths are inside the case folders.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medseg.errors import InputError, OutputError
from medseg.io.atomic import atomic_write_text
from medseg.io.safe_folder import make_own_folder
from medseg.io.write import write_labels
from medseg.review.corrected_seg import is_dicom, write_corrected_seg
from medseg.types import Volume

LOG_NAME = "review_log.json"
REVIEWED_NAME = "seg_reviewed.nii.gz"
DECISIONS = ("accepted", "corrected")


@dataclass(frozen=True)
class ReviewRecord:
    """One review decision as written to the log (see the module docstring)."""

    case_id: str
    decision: str
    seconds: float
    classes_changed: tuple[str, ...]
    voxels_changed: int
    reviewed_labels: str | None
    prediction: str | None
    time: str
    dicom_seg: str | None = None
    edits: int = 0


def changed_classes(original: np.ndarray, edited: np.ndarray, class_names: Sequence[str]) -> tuple[str, ...]:
    """Names of the classes (background excluded) whose voxels differ between two (I, J, K) label maps."""
    differ = original != edited
    values = np.union1d(np.unique(original[differ]), np.unique(edited[differ]))
    return tuple(class_names[v] if v < len(class_names) else f"label {v}" for v in values.astype(int) if v != 0)


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def read_review_log(path: str | Path) -> list[dict]:
    """The log's entries (oldest first); ``[]`` when the file does not exist.

    Raises:
        InputError: the file exists but is not a review log.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"the review log cannot be read ({error})",
                         "move it away; a new one is started at the next decision") from None
    reviews = content.get("reviews") if isinstance(content, dict) else None
    if not isinstance(reviews, list):
        raise InputError(path, "is not a medseg review log (no 'reviews' list)", "move it away")
    return reviews


def latest_decisions(path: str | Path) -> dict[str, str]:
    """{case_id: latest decision} from a review log (empty when there is none)."""
    return {entry["case_id"]: entry["decision"] for entry in read_review_log(path) if "case_id" in entry}


def save_review(
    *,
    case_id: str,
    decision: str,
    seconds: float,
    original: np.ndarray,
    edited: np.ndarray,
    reference: Volume,
    class_names: Sequence[str],
    case_dir: str | Path,
    log_path: str | Path,
    prediction: str | Path | None = None,
    edits: int = 0,
    model_name: str = "",
) -> ReviewRecord:
    """Record one decision; write the edited labels when they differ from the original.

    Args:
        case_id: the case's name.
        decision: ``"accepted"`` or ``"corrected"``.
        seconds: time spent on the case.
        original: (I, J, K) the model's labels on the source grid (zeros when there was no prediction).
        edited: (I, J, K) the labels after review, same grid.
        reference: the scan (its grid is written into the labels file).
        class_names: names of labels 0..N.
        case_dir: folder of the reviewed labels (``case_dir / "seg_reviewed.nii.gz"``).
        log_path: the review log to append to.
        prediction: the model's output file, recorded in the log and never written.
        edits: how many editing strokes the reader made (logged).
        model_name: the model the labels came from (a corrected DICOM-SEG names it as its algorithm).

    Returns:
        The record appended to the log.

    Raises:
        InputError: unknown decision or shapes that differ.
        OutputError: a file cannot be written, the reviewed path would replace the prediction, or
            ``case_dir`` is outside the log's folder, a symbolic link or another user's.
    """
    if decision not in DECISIONS:
        raise InputError(case_id, f"unknown review decision {decision!r}", f"use one of {', '.join(DECISIONS)}")
    original, edited = np.asarray(original), np.asarray(edited)
    if original.shape != edited.shape:
        raise InputError(case_id, f"edited labels {edited.shape} and original {original.shape} differ in shape",
                         "edit the labels layer that was opened, without resizing it")
    log_path = Path(log_path)
    voxels = int(np.count_nonzero(original != edited))
    reviewed_path = seg_path = None
    with_seg = decision == "corrected" and is_dicom(reference)
    if voxels or with_seg:
        if not Path(case_dir).resolve().is_relative_to(log_path.parent.resolve()):
            raise OutputError(f"{case_dir}: the case folder is outside the review folder {log_path.parent} "
                              "(hint: its case id came from a damaged or crafted report.json)")
        make_own_folder(case_dir, "case folder")
    if voxels:
        reviewed_path = Path(case_dir) / REVIEWED_NAME
        if prediction is not None and reviewed_path.resolve() == Path(prediction).resolve():
            raise OutputError(f"{reviewed_path}: would replace the model's output (hint: keep predictions "
                              f"and reviews apart; rename the prediction)")
        write_labels(edited.astype(original.dtype if np.issubdtype(original.dtype, np.integer) else np.int32),
                     reviewed_path, reference)
    if with_seg:
        seg_path = write_corrected_seg(edited, reference, class_names, case_dir, model_name)
    record = ReviewRecord(
        case_id=case_id, decision=decision, seconds=round(float(seconds), 1),
        classes_changed=changed_classes(original, edited, class_names), voxels_changed=voxels,
        reviewed_labels=_relative(reviewed_path, log_path.parent),
        prediction=_relative(Path(prediction) if prediction else None, log_path.parent),
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        dicom_seg=_relative(seg_path, log_path.parent), edits=int(edits),
    )
    reviews = read_review_log(log_path)
    reviews.append({**asdict(record), "classes_changed": list(record.classes_changed)})
    atomic_write_text(log_path, json.dumps({"version": 1, "reviews": reviews}, indent=2) + "\n")
    return record
