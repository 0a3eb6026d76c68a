"""A worklist: the cases of a ``medseg predict`` output folder (or the scans of a study folder),
ordered so that those most in need of review come first.

Order: cases not yet reviewed first; then failed cases and those with more QC flags; then
higher mean uncertainty; then case id. A prediction folder is read from ``report.json``
(``{"cases": [...]}``) when present, else from each ``<case>/case.json``; a case entry's keys
are those ``medseg predict`` writes (``case_id``, ``input``, ``status``, ``qc_flags``,
``mean_uncertainty`` or ``mean_uncertainty_in_structures``); its scan path ``input`` may be
absolute or relative to the input root (``report.json``'s ``input``, or the ``scan_root``
argument); class names come from
``report.json``'s ``model.class_names``.

Values read from these files never steer paths on their own: a ``case_id`` must be one plain
name (letters, digits, ``._-``) whose folder stays inside the prediction folder, else the entry is
left out with a warning (it would decide where ``seg_reviewed.nii.gz`` is written); a relative
``input`` must stay inside its root (no absolute paths, no ``..``). A DICOM case, which
``medseg predict`` names ``dicom:<SeriesInstanceUID>`` only, is found again by its case id under
the roots. Scans of a study folder are named by their file names, DICOM series by the same
pseudonymous case id as ``medseg predict`` (folder names may name the patient, and case names go
into ``review_log.json`` and folder names).

What a reader sees (``WorkItem.display_name``, ``series_description``; ``worklist_label``): the
input path relative to the study root, and for DICOM the series description, re-read live from
the study folder the viewer was given and matched by SeriesInstanceUID. They exist only in
memory: nothing here writes them, and files that travel (``report.json``, ``case.json``,
``review_log.json``) keep naming DICOM cases by case id and ``dicom:<SeriesInstanceUID>`` only.
Without the study folder a DICOM case reads ``dicom:<SeriesInstanceUID>``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.data_file_refs import check_inside
from medseg.review.review_log import LOG_NAME, latest_decisions

logger = logging.getLogger(__name__)

PREDICTION_NAMES = ("seg.nii.gz", "seg.nii", "seg.nrrd", "seg.mha")
UNCERTAINTY_NAMES = ("uncertainty.nii.gz", "uncertainty.nii", "uncertainty.nrrd", "uncertainty.mha")
STUDY_REVIEW_DIR = "medseg_review"  # where labels drawn on a study folder's scans are saved
OK_STATUS = ("", "ok", "skipped-complete", "done")
CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
DICOM_PREFIX = "dicom:"


@dataclass(frozen=True)
class WorkItem:
    """One case to review.

    Attributes:
        case_id: the case's name (a file or folder name, never a patient identifier).
        scan: the scan file or DICOM series folder; None when it cannot be found.
        prediction: the model's label file (never overwritten); None for a study folder.
        uncertainty: the uncertainty map file, if written.
        case_dir: the case's output folder (where the reviewed labels go); None for a study folder.
        status: the prediction status (``"ok"``, ``"failed"``...).
        qc_flags: QC flags of the prediction.
        mean_uncertainty: mean uncertainty over the case (0..1), if known.
        decision: the latest review decision (``"accepted"``/``"corrected"``), None when not reviewed.
        class_names: the model's class names (index = label value), when the report gives them.
        display_name: what a reader sees: the input path relative to the study root (in memory only;
            for DICOM re-read from the study folder, else ``dicom:<SeriesInstanceUID>``).
        series_description: DICOM SeriesDescription, read live from the study folder ("" otherwise).
        modality: DICOM Modality code from the report or the study folder ("" when unknown).
        model_name: the model folder's name from ``report.json`` ("" when unknown).
    """

    case_id: str
    scan: Path | None
    prediction: Path | None = None
    uncertainty: Path | None = None
    case_dir: Path | None = None
    status: str = "ok"
    qc_flags: tuple[str, ...] = ()
    mean_uncertainty: float | None = None
    decision: str | None = None
    class_names: tuple[str, ...] = ()
    display_name: str = ""
    series_description: str = ""
    modality: str = ""
    model_name: str = ""

    @property
    def needs_attention(self) -> int:
        """Failed cases count as one more flag."""
        return len(self.qc_flags) + (0 if self.status.lower() in OK_STATUS else 1)


def order_key(item: WorkItem) -> tuple:
    """Sort key: unreviewed first, then most flags, highest uncertainty, case id."""
    return (item.decision is not None, -item.needs_attention, -(item.mean_uncertainty or 0.0), item.case_id)


def worklist_label(item: WorkItem) -> str:
    """One worklist row: the readable name (and series description), flags, uncertainty, decision."""
    name = item.display_name or item.case_id
    if item.series_description:
        name += f" \u2014 {item.series_description}"
    facts = [f"{len(item.qc_flags)} flag(s)" if item.qc_flags else "",
             f"u={item.mean_uncertainty:.2f}" if item.mean_uncertainty is not None else "",
             item.decision or "", "" if item.status.lower() in OK_STATUS else item.status]
    return "  ".join([name, *(fact for fact in facts if fact)])


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"cannot be read as JSON ({error})",
                         "run `medseg predict` again to rewrite it") from None


def _input_value(entry: Mapping[str, Any]) -> str:
    value = entry.get("input") or entry.get("scan") or entry.get("image")
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else ""


def _scan_path(entry: Mapping[str, Any], roots: list[Path], dicom: _DicomIndex) -> Path | None:
    value = _input_value(entry)
    if not value:
        return None
    if value.startswith(DICOM_PREFIX):
        found = dicom.find(str(entry.get("case_id", "")))
        return found.path if found else None
    for root in roots:
        try:
            path = check_inside(root, value, root, "the case's input")
        except InputError:
            return None  # absolute, '..' or through a link out of its root: never followed
        if path.exists():
            return path
    return None


@dataclass(frozen=True)
class _FoundSeries:
    """A DICOM series found again under a root: its folder, path relative to the root, description, modality."""

    path: Path
    relative: str
    description: str
    modality: str


class _DicomIndex:
    """Case id -> DICOM source under the roots, discovered once when first needed."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self._found: dict[str, _FoundSeries] | None = None

    def find(self, case: str) -> _FoundSeries | None:
        if self._found is None:
            from medseg.inference.case_ids import case_id, relative_input
            from medseg.io.discover import discover

            self._found = {}
            for root in dict.fromkeys(r.resolve() for r in self.roots if r.is_dir()):
                for source in discover(root).sources:
                    if source.kind.startswith("dicom"):
                        relative = relative_input(source.path, root)
                        self._found.setdefault(case_id(relative, source.series_uid), _FoundSeries(
                            source.path, relative, source.description, source.modality))
        return self._found.get(case)


def safe_case_dir(folder: Path, case_id: str) -> Path | None:
    """``folder / case_id`` when ``case_id`` is one plain name that stays inside ``folder``; else None."""
    if not CASE_ID_PATTERN.fullmatch(case_id) or case_id in (".", ".."):
        return None
    try:
        return check_inside(folder, case_id, folder, "the case id")
    except InputError:
        return None


def _item(entry: Mapping[str, Any], folder: Path, roots: list[Path], class_names: tuple[str, ...],
          dicom: _DicomIndex) -> WorkItem | None:
    case_id = str(entry.get("case_id") or entry.get("case") or entry.get("id") or "")
    case_dir = safe_case_dir(folder, case_id)
    if case_dir is None:
        logger.warning("worklist: left out a case whose id %r is not a plain name inside %s", case_id[:80], folder)
        return None
    uncertainty = entry.get("mean_uncertainty", entry.get("mean_uncertainty_in_structures"))
    value = _input_value(entry)
    display, description, modality = value, "", str(entry.get("modality") or "")
    if value.startswith(DICOM_PREFIX) and (found := dicom.find(case_id)) is not None:
        display, description, modality = found.relative, found.description, modality or found.modality
    return WorkItem(
        case_id=case_id,
        scan=_scan_path(entry, roots, dicom),
        prediction=_first(case_dir, PREDICTION_NAMES),
        uncertainty=_first(case_dir, UNCERTAINTY_NAMES),
        case_dir=case_dir,
        status=str(entry.get("status", "ok")),
        qc_flags=tuple(str(flag) for flag in entry.get("qc_flags", ()) or ()),
        mean_uncertainty=float(uncertainty) if isinstance(uncertainty, (int, float)) else None,
        class_names=class_names, display_name=display, series_description=description, modality=modality,
    )


def _input_roots(value: str, folder: Path) -> list[Path]:
    """Where relative case inputs may start: the batch input (as given, from the current folder or
    beside the output folder); for a single-file input, its folder."""
    given = Path(value)
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, folder.parent / given, folder / given]
    roots = []
    for root in candidates:
        roots.extend([root.parent, root] if root.is_file() else [root])
    return roots


def _model_name(folder: Path) -> str:
    """The model folder's name from ``report.json`` ("" when there is none)."""
    report_path = folder / "report.json"
    model = _read_json(report_path).get("model") if report_path.is_file() else None
    path = model.get("path") if isinstance(model, Mapping) else None
    return Path(path).name if isinstance(path, str) else ""


def _prediction_entries(folder: Path) -> tuple[list[Mapping[str, Any]], list[Path], tuple[str, ...]]:
    """Case entries, candidate input roots and the model's class names of a prediction folder."""
    report_path = folder / "report.json"
    roots: list[Path] = []
    if report_path.is_file():
        report = _read_json(report_path)
        for key in ("input_dir", "input", "input_root"):
            if isinstance(report.get(key), str):
                roots.extend(_input_roots(report[key], folder))
        pacs = report.get("pacs")  # studies pulled from a PACS: OUT/studies/study_<hash> (medseg.inference.pacs_batch)
        for study in pacs.get("studies", []) if isinstance(pacs, Mapping) else []:
            if isinstance(study, Mapping) and isinstance(study.get("folder"), str):
                roots.append(folder / study["folder"])
        model = report.get("model")
        names = model.get("class_names", ()) if isinstance(model, Mapping) else ()
        cases = report.get("cases", [])
        if isinstance(cases, Mapping):
            cases = [{"case_id": key, **value} for key, value in cases.items()]
        return list(cases), roots, tuple(str(n) for n in names or ())
    entries = []
    for case_json in sorted(folder.glob("*/case.json")):
        entry = _read_json(case_json)
        entries.append({"case_id": case_json.parent.name, **entry})
    if not entries:  # a bare folder of <case>/seg.nii.gz
        entries = [{"case_id": p.parent.name} for p in sorted(folder.glob("*/seg.nii*"))]
    return entries, roots, ()


def load_worklist(folder: str | Path, *, scan_root: str | Path | None = None) -> list[WorkItem]:
    """The cases of a prediction output folder or of a study folder, most in need of review first.

    Args:
        folder: a ``medseg predict`` output folder (``report.json`` or ``<case>/case.json`` /
            ``<case>/seg.nii.gz``), or a study folder of scans (then no predictions are attached).
        scan_root: where the scans' relative ``input`` paths start (default: from report.json,
            then the output folder's parent).

    Returns:
        WorkItems in review order, with the latest decision from ``review_log.json`` in ``folder``.

    Raises:
        InputError: the folder is missing, holds no cases, or has an unreadable report/case file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder", "give a `medseg predict` output folder or a study folder")
    entries, roots, class_names = _prediction_entries(folder)
    roots = ([Path(scan_root)] if scan_root else []) + roots + [folder.parent, folder]
    if entries:
        dicom = _DicomIndex(roots)
        items = [item for entry in entries if (item := _item(entry, folder, roots, class_names, dicom)) is not None]
        model_name = _model_name(folder)
        items = [replace(item, model_name=model_name) for item in items]
    else:
        items = _study_items(folder)
    if not items:
        raise InputError(folder, "holds no cases (no report.json, no <case>/case.json, no scans)",
                         "give a `medseg predict` output folder or a folder of scans")
    decisions = latest_decisions(folder / LOG_NAME)
    items = [replace(item, decision=decisions.get(item.case_id)) for item in items]
    return sorted(items, key=order_key)


def _study_items(folder: Path) -> list[WorkItem]:
    """Every scan that discovery finds in a study folder, without predictions."""
    from medseg.inference.case_ids import case_id, relative_input
    from medseg.io.discover import discover
    from medseg.types import source_name

    discovery = discover(folder)
    items = []
    for source in discovery.sources:
        display = relative_input(source.path, folder)
        if source.kind.startswith("dicom"):  # folder and file names of PACS exports may name the patient
            name = case_id(display, source.series_uid)
        else:
            relative = source.path.relative_to(folder) if source.path != folder else Path(source.path.name)
            name = "_".join((*relative.parent.parts, source_name(relative.name))) or source_name(folder)
        description = source.description if source.kind.startswith("dicom") else ""
        items.append(WorkItem(case_id=name, scan=source.path, case_dir=folder / STUDY_REVIEW_DIR / name,
                              display_name=display, series_description=description, modality=source.modality))
    for reason, count in sorted(discovery.skipped_counts.items()):
        logger.info("worklist: skipped %d file(s) (%s)", count, reason)
    return items
