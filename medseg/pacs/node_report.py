"""``OUT/report.json`` of the storage node: ``medseg predict``'s report, one entry per finished series.

The report is rebuilt from the queue after every change of a series' outcome (so it is never
out of step with the queue, even after a kill), with ``medseg.inference.batch_report``: the same
top-level layout, summary and case entries as a ``medseg predict`` output (``medseg evaluate`` and
``medseg view --pred`` read it alike). Each entry of a segmented or failed series also has

``"node": {"series": KEY, "state": STATE, "attempts": N, "received": ISO, "sent": ISO | null,
"round_trip_s": SECONDS | null, "send_error": TEXT | null}``

where ``round_trip_s`` runs from the first object received to the SEG accepted by the target. A
series whose SEG the target refused ``max_attempts`` times is ``"status": "failed"`` at stage
``send``. Series still arriving or waiting are counted in ``"queue"``, not listed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.inference import batch_report
from medseg.pacs.queue import STATES, SeriesRow


def _iso(moment: float | None) -> str | None:
    return None if moment is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(moment))


def series_entry(row: SeriesRow) -> dict[str, Any]:
    """The report entry of a segmented, sent or failed series (its case entry plus ``node``)."""
    entry = dict(row.entry or {"case_id": row.case_id, "input": f"dicom:{row.series_uid}", "status": "failed",
                               "stage": "read", "reason": row.reason or "", "outputs": [], "timings_s": {}})
    send_failed = row.state == "failed" and entry.get("status") != "failed"
    if send_failed:
        entry.update(status="failed", stage="send", reason=row.reason or "")
    entry["node"] = {
        "series": row.key,
        "state": row.state,
        "attempts": row.attempts,
        "received": _iso(row.first_received),
        "sent": _iso(row.sent_at),
        "round_trip_s": round(row.sent_at - row.first_received, 3) if row.sent_at else None,
        "send_error": row.reason if row.state == "segmented" or send_failed else None,
    }
    return entry


def build_node_report(rows: Sequence[SeriesRow], *, model_dir: str | Path, model_sha256: str,
                      options: Mapping[str, Any], class_names: Sequence[str], wall_seconds: float) -> dict[str, Any]:
    """The report as plain data (see the module docstring)."""
    finished = [series_entry(row) for row in rows if row.entry is not None or row.state == "failed"]
    report = batch_report.build_report(input_path=None, model_dir=model_dir, model_sha256=model_sha256,
                                       options=options, entries=finished, ignored=[], class_names=class_names,
                                       wall_seconds=wall_seconds)
    trips = [e["node"]["round_trip_s"] for e in finished if e["node"]["round_trip_s"] is not None]
    report["summary"]["sent"] = sum(1 for row in rows if row.state == "sent")
    report["summary"]["mean_round_trip_s"] = round(sum(trips) / len(trips), 3) if trips else None
    report["queue"] = {state: sum(1 for row in rows if row.state == state) for state in STATES}
    return report


def write_node_report(folder: Path, report: Mapping[str, Any]) -> Path:
    """Write ``folder/report.json`` atomically."""
    return batch_report.write_report(Path(folder), report)
