"""``OUT/report.json`` of a batch: every case, its status, outputs, QC flags, volumes and timings
(and ``OUT/report.md``, the same for people: ``medseg.inference.batch_summary``).

Nothing from the DICOM tags goes in beyond the coded Modality and the SeriesInstanceUID: cases
are named by their pseudonymous id, image files also by their path relative to the batch input,
DICOM series by ``dicom:<SeriesInstanceUID>`` only (never their folder or file names); failure
reasons come from medseg's errors, with DICOM folder and file names redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.inference.batch_summary import SUMMARY_NAME, report_markdown
from medseg.io.atomic import atomic_write_text

REPORT_NAME = "report.json"
STATUSES = ("ok", "skipped-complete", "failed")
# Timed steps of a case (medseg.inference.batch_case); their sum is the seconds per scan.
CASE_STAGES = ("guard", "hash", "check", "prepare", "read", "predict", "write", "record")


def summarise(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status and mean seconds per predicted scan (read + predict + write)."""
    counts = {status: sum(1 for e in entries if e.get("status") == status) for status in STATUSES}
    done = [e["timings_s"] for e in entries if e.get("status") == "ok"]
    per_scan = [sum(t.get(stage, 0.0) for stage in CASE_STAGES) for t in done]
    return {
        "cases": len(entries),
        **counts,
        "seconds_per_scan": round(sum(per_scan) / len(per_scan), 3) if per_scan else None,
        "predict_seconds_per_scan": round(sum(t.get("predict", 0.0) for t in done) / len(done), 3) if done else None,
    }


def build_report(*, input_path: str | Path | None, model_dir: str | Path, model_sha256: str, options: Mapping[str, Any],
                 entries: Sequence[Mapping[str, Any]], ignored: Sequence[Mapping[str, str]],
                 class_names: Sequence[str], wall_seconds: float) -> dict[str, Any]:
    """The report as plain data.

    Args:
        input_path, model_dir: as given on the command line; ``input_path`` None when the input holds
            DICOM (PACS exports name folders after the patient).
        model_sha256: fingerprint of the model folder.
        options: the batch's settings (uncertainty, probabilities, tta, workers, device).
        entries: one per case, in discovery order (see ``batch_case.run_case``).
        ignored: files under the input that are not scans, counted per reason ``{"reason", "count"}``.
        class_names: the model's class names (index = label value).
        wall_seconds: the batch's wall time.
    """
    return {
        "input": None if input_path is None else str(input_path),
        "model": {"path": str(model_dir), "sha256": model_sha256, "class_names": list(class_names)},
        "options": dict(options),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": {**summarise(entries), "wall_seconds": round(wall_seconds, 3)},
        "cases": [dict(entry) for entry in entries],
        "ignored_files": [dict(item) for item in ignored],
    }


def write_report(out_dir: Path, report: Mapping[str, Any]) -> Path:
    """Write ``OUT/report.json`` and its page for people, ``OUT/report.md``, each atomically; the JSON's path."""
    path = atomic_write_text(out_dir / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / SUMMARY_NAME, report_markdown(report))
    return path


def case_outputs(entry: Mapping[str, Any]) -> list[str]:
    """The case's output files relative to OUT (``case_x/seg.nii.gz`` ...)."""
    return [f"{entry['case_id']}/{name}" for name in entry.get("outputs", [])]
