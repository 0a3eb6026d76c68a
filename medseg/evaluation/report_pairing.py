"""Pair the case folders of a ``medseg predict`` output with reference names through its ``report.json``.

``medseg predict`` names its case folders pseudonymously (``case_<hash>``, ``medseg.inference.case_ids``)
and records what each came from in ``OUT/report.json``. A reference is named

* for NIfTI / NRRD / MetaImage input: after the input file's stem (``imagesTs/brain_010.nii.gz`` ->
  ``labelsTs/brain_010.nii.gz``); an nnU-Net channel suffix is dropped when only the bare name is a
  reference (``brain_010_0000.nii.gz`` -> ``brain_010``);
* for a DICOM series: after its SeriesInstanceUID (``labels/1.2.826.0.1....nii.gz``), the only name the
  report keeps for DICOM (folder and file names of PACS exports may name the patient).

``pair_through_report`` returns ``{reference name: case folder's seg file}`` and raises one error that
lists every reference it could not pair and why (no such input, the case failed, two inputs for one name).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.types import source_name

LOGGER = logging.getLogger(__name__)
REPORT_NAME = "report.json"  # medseg.inference.batch_report.REPORT_NAME (not imported: evaluation needs no torch)
DONE = ("ok", "skipped-complete")
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")
_SHOWN = 8


@dataclass(frozen=True)
class ReportCase:
    """One case of a predict report.

    Attributes:
        case_id: the case folder's name.
        names: reference names it may pair with, preferred first.
        status: ``ok``, ``skipped-complete`` or ``failed``.
        reason: why it failed (``stage: reason``), empty otherwise.
    """

    case_id: str
    names: tuple[str, ...]
    status: str
    reason: str = ""


def read_report_cases(pred_dir: Path) -> list[ReportCase] | None:
    """The cases of ``pred_dir/report.json``, or None when the folder has no report (not a predict output).

    Raises:
        InputError: the report is unreadable or not a predict report.
    """
    path = pred_dir / REPORT_NAME
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot read the predict report ({type(error).__name__})",
                         "rerun `medseg predict` into this folder (reruns skip complete cases)") from None
    entries = report.get("cases") if isinstance(report, dict) else None
    if not isinstance(entries, list):
        raise InputError(path, "not a `medseg predict` report (no 'cases' list)",
                         "give the folder `medseg predict --out` wrote")
    return [_report_case(entry, path) for entry in entries]


def report_class_names(pred_dir: Path) -> tuple[str, ...] | None:
    """The model's class names recorded in ``pred_dir/report.json``, or None without a usable report."""
    try:
        report = json.loads((pred_dir / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = report.get("model", {}).get("class_names") if isinstance(report, dict) else None
    if isinstance(names, list) and len(names) > 1 and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def _report_case(entry: Any, path: Path) -> ReportCase:
    if not isinstance(entry, dict) or not isinstance(entry.get("case_id"), str):
        raise InputError(path, "a case without 'case_id'", "give the folder `medseg predict --out` wrote")
    text = str(entry.get("input") or "")
    uid = str(entry.get("series_uid") or "")
    if not uid and text.startswith("dicom:"):
        uid = text[len("dicom:"):]
    if uid or str(entry.get("kind", "")).startswith("dicom"):
        names: tuple[str, ...] = (uid,) if uid else ()
    else:
        stem = source_name(text)
        bare = _CHANNEL_SUFFIX.sub("", stem)
        names = (stem, bare) if bare != stem else (stem,)
    reason = f"{entry.get('stage', '?')}: {entry.get('reason', '')}" if entry.get("status") == "failed" else ""
    return ReportCase(entry["case_id"], tuple(n for n in names if n), str(entry.get("status", "")), reason)


def pair_through_report(
    report_cases: list[ReportCase], case_files: Mapping[str, Path], truth_names: set[str], pred_dir: Path,
) -> dict[str, Path]:
    """``{reference name: prediction file}`` for every reference; predictions without a reference are logged.

    Args:
        report_cases: from ``read_report_cases``.
        case_files: ``{case folder name: its seg file}`` found in ``pred_dir``.
        truth_names: the reference names (file stems of the truth folder).
        pred_dir: the predict output (for messages).

    Raises:
        InputError: any reference without exactly one completed prediction, listing each with its cause.
    """
    paired: dict[str, Path] = {}
    failed: dict[str, str] = {}
    problems: list[str] = []
    unmatched: list[str] = []
    for case in report_cases:
        name = next((n for n in case.names if n in truth_names), None)
        if name is None:
            unmatched.append(f"{case.case_id} ({case.names[0] if case.names else 'unnamed'})")
            continue
        if case.status not in DONE:
            failed[name] = f"{name}: its case {case.case_id} failed ({case.reason})"
        elif case.case_id not in case_files:
            failed[name] = f"{name}: its case folder {case.case_id}/ holds no seg file"
        elif name in paired:
            problems.append(f"{name}: two predicted inputs ({paired[name].parent.name} and {case.case_id})")
        else:
            paired[name] = case_files[case.case_id]
    if unmatched:
        LOGGER.warning("%d prediction(s) without a reference are not evaluated: %s", len(unmatched),
                       ", ".join(unmatched[:5]))
    missing = sorted(truth_names - set(paired) - set(failed))
    problems += [failed[name] for name in sorted(set(failed) - set(paired))]
    problems += [f"{name}: no input of that name in the report" for name in missing]
    if problems:
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        shown = "; ".join(problems[:_SHOWN]) + more
        raise InputError(
            pred_dir, f"cannot pair {len(problems)} of {len(truth_names)} reference(s) with a prediction: {shown}",
            f"references are named after the input file (brain_010.nii.gz -> brain_010) or, for DICOM, its "
            f"SeriesInstanceUID; predict every reference case (failed cases: see {pred_dir / REPORT_NAME}), "
            "or evaluate against a folder holding only the predicted cases",
        )
    return paired
