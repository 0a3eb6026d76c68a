"""``OUT/report.md``: a batch's ``report.json`` as a page an operator reads the morning after.

What it says, in order: one line of counts (predicted, already complete, failed, flagged for review);
the model, its fingerprint and the settings that ran; the failed cases with the stage and the reason
(what to do is in the reason's hint); the cases to review first, in the order the napari worklist
opens them (``medseg view --pred OUT``: failed and more QC flags first, then higher mean uncertainty,
then case id) with every flag in words; then every case with its volumes per class, its uncertainty and
its seconds; files that were not scans; and, where the report has them, the PACS studies and a
listening node's queue.

It is written from the report alone, so it names cases exactly as ``report.json`` does (pseudonymous
case ids, inputs relative to the batch input, DICOM series as ``dicom:<SeriesInstanceUID>``): nothing
here reads a scan or a DICOM tag. Text from the report is escaped for Markdown tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SUMMARY_NAME = "report.md"
OK_STATUSES = ("", "ok", "skipped-complete", "done")  # as medseg.review.worklist.OK_STATUS


def review_order_key(entry: Mapping[str, Any]) -> tuple:
    """Sort key of a case to review: failed and more QC flags first, then higher mean uncertainty, then case id.

    The napari worklist (``medseg.review.worklist.order_key``) orders unreviewed cases the same way.
    """
    failed = 0 if entry.get("status", "ok") in OK_STATUSES else 1
    attention = len(entry.get("qc_flags") or ()) + failed
    return (-attention, -_mean_uncertainty(entry, default=0.0), str(entry.get("case_id", "")))


def needs_review(entry: Mapping[str, Any]) -> bool:
    """A case that failed or carries a QC flag."""
    return entry.get("status", "ok") not in OK_STATUSES or bool(entry.get("qc_flags"))


def report_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown page of a batch report (see the module docstring)."""
    cases = list(report.get("cases") or [])
    summary = report.get("summary") or {}
    lines = [f"# medseg predict: {_headline(cases)}", "", *_settings_lines(report, summary), ""]
    failed = [case for case in cases if case.get("status", "ok") not in OK_STATUSES]
    if failed:
        lines += [f"## Failed ({len(failed)})", "", "| case | input | stage | reason |", "|---|---|---|---|"]
        lines += [_row(case.get("case_id"), case.get("input"), case.get("stage"), case.get("reason"))
                  for case in failed]
        lines.append("")
    flagged = sorted((case for case in cases if case.get("status", "ok") in OK_STATUSES and case.get("qc_flags")),
                     key=review_order_key)
    if flagged:
        lines += [f"## Review first ({len(flagged)} flagged)", "",
                  "In the order `medseg view --pred OUT` opens them.", "",
                  "| case | input | mean uncertainty | QC flags |", "|---|---|---|---|"]
        lines += [_row(case.get("case_id"), case.get("input"), _number(_mean_uncertainty(case), 3),
                       "; ".join(case.get("qc_flags") or ())) for case in flagged]
        lines.append("")
    lines += _cases_table(cases, _class_names(report, cases))
    lines += _ignored_lines(report.get("ignored_files") or [])
    lines += _pacs_lines(report.get("pacs"))
    lines += _queue_lines(report.get("queue"))
    return "\n".join(lines).rstrip("\n") + "\n"


def _headline(cases: Sequence[Mapping[str, Any]]) -> str:
    """``12 cases: 10 predicted, 1 already complete, 1 failed; 3 flagged for review``."""
    count = {status: sum(1 for case in cases if case.get("status") == status) for status in ("ok", "skipped-complete")}
    failed = sum(1 for case in cases if case.get("status", "ok") not in OK_STATUSES)
    flagged = sum(1 for case in cases if case.get("status", "ok") in OK_STATUSES and case.get("qc_flags"))
    return (f"{len(cases)} case{'' if len(cases) == 1 else 's'}: {count['ok']} predicted, "
            f"{count['skipped-complete']} already complete, {failed} failed; {flagged} flagged for review")


def _settings_lines(report: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    """The model, the options that ran, when, and how long."""
    model = report.get("model") or {}
    name = Path(str(model.get("path", ""))).name or "?"
    sha = str(model.get("sha256", ""))[:12]
    options = report.get("options") or {}
    shown = ", ".join(f"{key} {_option(value)}" for key, value in options.items() if key != "medseg")
    per_scan = summary.get("seconds_per_scan")
    timing = f"wall time {_number(summary.get('wall_seconds'), 1)} s"
    if per_scan is not None:
        predicting = _number(summary.get("predict_seconds_per_scan"), 2)
        timing += f", {_number(per_scan, 2)} s per predicted scan (predicting {predicting} s)"
    source = report.get("input")
    named = f"`{_cell(source)}`" if source else "not named (it holds DICOM, whose folders may name patients)"
    return [f"- model: `{_cell(name)}` (folder sha256 {sha}), classes: {_cell(', '.join(_class_names(report, [])))}",
            f"- settings: {_cell(shown) or 'defaults'}",
            f"- input: {named}",
            f"- {report.get('created', '?')}, {timing}",
            "- details per case: `report.json` and `<case>/case.json`; review: `medseg view --pred OUT`"]


def _cases_table(cases: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> list[str]:
    """Every case: status, volume per class (mL), mean uncertainty, flags and seconds."""
    if not cases:
        return ["No scans were found.", ""]
    header = ["case", "input", "status", *(f"{name} (mL)" for name in class_names), "mean uncertainty", "QC flags",
              "seconds"]
    lines = ["## All cases", "", _row(*header), "|" + "---|" * len(header)]
    for case in cases:
        volumes = case.get("class_volumes_ml") or {}
        timings = case.get("timings_s") or {}
        seconds = sum(value for value in timings.values() if isinstance(value, (int, float)))
        lines.append(_row(case.get("case_id"), case.get("input"), case.get("status"),
                          *(_number(volumes.get(name), 1) for name in class_names),
                          _number(_mean_uncertainty(case), 3), len(case.get("qc_flags") or ()) or "",
                          _number(seconds, 1)))
    return [*lines, ""]


def _ignored_lines(ignored: Sequence[Mapping[str, Any]]) -> list[str]:
    """Files under the input that were not scans, counted per reason."""
    if not ignored:
        return []
    lines = ["## Not scans (left out)", "", "| files | reason |", "|---|---|"]
    return [*lines, *(_row(item.get("count"), item.get("reason")) for item in ignored), ""]


def _pacs_lines(pacs: Mapping[str, Any] | None) -> list[str]:
    """The DICOMweb studies of ``medseg predict URL ...``: status, cases, objects sent, round trip."""
    studies = (pacs or {}).get("studies") or []
    if not studies:
        return []
    lines = ["## PACS studies", "", "| study | status | cases | sent | round trip (s) | reason |",
             "|---|---|---|---|---|---|"]
    for study in studies:
        lines.append(_row(study.get("study_uid") or study.get("url"), study.get("status"),
                          len(study.get("case_ids") or ()), study.get("sent_instances", ""),
                          _number(study.get("round_trip_s"), 1), study.get("reason", "")))
    return [*lines, ""]


def _queue_lines(queue: Mapping[str, Any] | None) -> list[str]:
    """A listening node's series per queue state."""
    if not queue:
        return []
    return ["## Queue", "", "| state | series |", "|---|---|",
            *(_row(state, count) for state, count in queue.items()), ""]


def _class_names(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """Foreground class names: the model's (index 0 is background), else those the cases' volumes name."""
    names = list((report.get("model") or {}).get("class_names") or [])[1:]
    for case in cases:
        names += [name for name in (case.get("class_volumes_ml") or {}) if name not in names]
    return names


def _mean_uncertainty(entry: Mapping[str, Any], default: float = math.nan) -> float:
    """The case's mean uncertainty inside its predicted structures (``default`` when absent or not a number)."""
    value = entry.get("mean_uncertainty", entry.get("mean_uncertainty_in_structures"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default


def _number(value: Any, digits: int) -> str:
    """A number rounded for reading; empty for a missing or non-finite one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def _option(value: Any) -> str:
    """An option's value as a reader says it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _row(*cells: Any) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(value: Any) -> str:
    """Report text made safe inside a table cell: no pipes, no line breaks, no HTML."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
