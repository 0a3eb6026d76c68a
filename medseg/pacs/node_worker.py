"""Segment one complete series of the storage node with the batch machinery, and prepare its SEG.

The series' received objects (``OUT/incoming/<key>/``) are planned with
``medseg.inference.batch.plan_cases`` and segmented with ``medseg.inference.batch_case.run_case``,
exactly as ``medseg predict`` does one case: outputs in ``OUT/<case_id>/`` (labels, DICOM-SEG,
case.json, completion record), a case entry for the report, a failure as an entry with the stage
and reason (never an exception). A case already complete on disk (the node was killed after
writing it) is not predicted again.

Sending twice is harmless by construction: the SEG that is sent (``OUT/outbox/<key>.dcm``) is the
case's ``seg.dcm`` with its SeriesInstanceUID and SOPInstanceUID replaced by UIDs *derived* from
the source series' UID, the source instances' SOPInstanceUIDs and the model folder's sha256
(``pydicom.uid.generate_uid`` with those as entropy sources). Redoing a series after a crash, or
resending a SEG whose "sent" mark was lost to a kill, yields the same instance UID, so a PACS that
already stored it sees the same instance again instead of a second segmentation. A series that
gained images, or a different model, gets new UIDs (it is a different result).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from medseg.errors import InputError
from medseg.inference.batch import plan_cases
from medseg.inference.batch_case import DICOM_SEG_FILE, CaseSettings, run_case
from medseg.inference.batch_report import case_outputs
from medseg.io.atomic import atomic_path
from medseg.pacs.dimse_scp import INCOMING
from medseg.pacs.queue import SeriesRow

LOGGER = logging.getLogger(__name__)
OUTBOX = "outbox"


@dataclass(frozen=True)
class SeriesOutcome:
    """What segmenting one series gave.

    Attributes:
        entry: the case's report entry (a failed one when ``reason`` is set).
        case_id: the case id (None when no case could be planned).
        seg_file: the SEG to send, relative to the node's folder (None on failure).
        reason: why the series failed (identifier-free), or None.
    """

    entry: dict[str, Any]
    case_id: str | None
    seg_file: str | None
    reason: str | None


def derived_uids(series_uid: str, instance_uids: list[str], model_sha256: str) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of the SEG of this source and model; the same on every call."""
    sources = ["medseg-seg", series_uid, model_sha256, *sorted(instance_uids)]
    return generate_uid(entropy_srcs=["series", *sources]), generate_uid(entropy_srcs=["instance", *sources])


def segment_series(row: SeriesRow, folder: Path, predictor: Any, settings: CaseSettings) -> SeriesOutcome:
    """Segment the received objects of ``row`` into ``folder`` (the node's folder); never raises for a bad series.

    Args:
        row: the claimed queue row.
        folder: the node's folder (``settings.out_dir``).
        predictor: a loaded ``medseg.inference.predictor.Predictor``.
        settings: the batch case settings (output folder, model fingerprint).
    """
    incoming = folder / INCOMING / row.key
    try:
        plans, _ = plan_cases(incoming, folder)
    except InputError as error:
        return _failed(row, None, f"read: {error.reason}")
    if len(plans) != 1:
        return _failed(row, None, f"read: the series holds {len(plans)} scans; one scan per series is segmented")
    plan = plans[0]
    entry = run_case(plan, predictor, settings)
    entry = {**entry, "outputs": case_outputs(entry)}
    if entry["status"] == "skipped-complete":  # done before a restart: its outputs are this series' result
        entry.update(status="ok", resumed=True)
    if entry["status"] == "failed":
        return SeriesOutcome(entry, plan.case_id, None, f"{entry.get('stage', 'predict')}: {entry.get('reason', '')}")
    seg = folder / plan.case_id / DICOM_SEG_FILE
    if not seg.is_file():
        return _failed(row, plan.case_id, "write: the case has no DICOM-SEG")
    try:
        instance_uids = [str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                             .SOPInstanceUID) for path in plan.source.files]
        outbox = folder / OUTBOX / f"{row.key}.dcm"
        write_with_uids(seg, outbox, *derived_uids(row.series_uid, instance_uids, settings.model_sha256))
    except Exception as error:  # noqa: BLE001 - one series' problem, never the queue's
        LOGGER.debug("preparing the SEG of series %s failed", row.key, exc_info=True)
        return _failed(row, plan.case_id, f"write: the SEG to send cannot be prepared ({type(error).__name__})")
    return SeriesOutcome(entry, plan.case_id, f"{OUTBOX}/{outbox.name}", None)


def write_with_uids(source: Path, target: Path, series_uid: str, sop_instance_uid: str) -> Path:
    """Copy the DICOM file ``source`` to ``target`` (atomically) with new series and instance UIDs."""
    dataset = pydicom.dcmread(source)
    dataset.SeriesInstanceUID = series_uid
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temp:
        dataset.save_as(temp, enforce_file_format=True)
    return target


def _failed(row: SeriesRow, case_id: str | None, reason: str) -> SeriesOutcome:
    entry = {"case_id": case_id, "input": f"dicom:{row.series_uid}", "kind": "dicom-series", "status": "failed",
             "stage": reason.split(":", 1)[0], "reason": reason.split(": ", 1)[-1], "outputs": [], "qc_flags": [],
             "class_volumes_ml": {}, "timings_s": {}, "series_uid": row.series_uid}
    return SeriesOutcome(entry, case_id, None, reason)
