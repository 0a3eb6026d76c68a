"""``medseg predict`` on studies of a PACS: retrieve by URL, run the batch, store results back.

For each study URL (``http(s)://HOST/.../studies/<StudyInstanceUID>``, ``medseg.pacs.dicomweb``):

1. **Retrieve** (WADO-RS) into ``OUT/studies/study_<hash>/``: a local study folder kept with the
   outputs (reruns reuse it), named by a hash of the StudyInstanceUID, never by patient data.
2. **Predict**: the retrieved folders are one batch (``medseg.inference.batch.run_batch``), exactly as a
   local study: discovery, checks, every output (``--rtstruct`` included), ``report.json``.
3. **Send** (``send_to``, ``medseg.pacs.senders``): each predicted case's ``seg.dcm`` (and
   ``rtstruct.dcm``) is stored into its own study (STOW-RS ``ROOT/studies/<UID>``). Cases already
   complete from an earlier run are sent again (storing the same SOP instance twice is harmless).

One study's failure (bad URL, no connection, 401, 404, an empty study, a refused store) is recorded and
the others go on. ``report.json`` gets a ``pacs`` section: per study its URL, StudyInstanceUID, local
folder, status, reason, retrieval and sending seconds, and the round trip (retrieve + predict + send);
per case its study (the napari Review dock sends corrected SEGs there). Nothing in it identifies a
patient: URLs, UIDs, counts and seconds only. Credentials never appear (URLs with a user or password in
them are refused). Local input with ``send_to`` works too: each SEG goes to the study its header names.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from medseg.errors import InputError, MedsegError
from medseg.inference import batch_report, completion
from medseg.inference.batch import BatchResult, run_batch
from medseg.inference.batch_case import DICOM_SEG_FILE, RTSTRUCT_FILE
from medseg.pacs.credentials import Credentials
from medseg.pacs.dicomweb import (
    STUDIES_FOLDER,
    PacsError,
    RetrievedStudy,
    make_session,
    parse_study_url,
    retrieve_study,
    study_folder_name,
)
from medseg.pacs.senders import Sender, build_sender

LOGGER = logging.getLogger(__name__)
SENT_FILES = (DICOM_SEG_FILE, RTSTRUCT_FILE)


@dataclass(frozen=True)
class PacsBatchResult:
    """What a PACS batch did.

    Attributes:
        batch: the batch over the retrieved studies (None when no study was retrieved).
        studies: the ``pacs.studies`` entries of the report (one per URL, in order).
        report_path: ``OUT/report.json``.
    """

    batch: BatchResult | None
    studies: tuple[dict[str, Any], ...]
    report_path: Path

    @property
    def succeeded(self) -> bool:
        """True when every study was retrieved, predicted and (when asked) sent."""
        batch_ok = self.batch is None or self.batch.succeeded
        return batch_ok and all(study["status"] == "ok" for study in self.studies)


def run_pacs_batch(urls: Sequence[str], model_dir: str | Path, out_dir: str | Path, *,
                   credentials: Credentials | None = None, send_to: str | None = None,
                   timeout_s: float = 60.0, **batch_options: Any) -> PacsBatchResult:
    """Retrieve the studies at ``urls``, predict them into ``out_dir``, send the results to ``send_to``.

    Args:
        urls: study URLs (``http(s)://HOST/.../studies/<StudyInstanceUID>``).
        model_dir: a model folder.
        out_dir: the output folder (the studies go to ``OUT/studies/``).
        credentials: for the PACS the studies come from and the one results go to.
        send_to: a target ``medseg.pacs.senders.build_sender`` accepts (a DICOMweb root), or None.
        timeout_s: seconds to wait for a PACS's answers.
        **batch_options: passed to ``run_batch`` (uncertainty, rtstruct, tta, workers, ...).

    Returns:
        PacsBatchResult; ``succeeded`` is False when a study or a case failed.

    Raises:
        ConfigError / PacsError: ``send_to`` is not a usable target (checked before anything is fetched).
        OutputError: the output folder or the report cannot be written.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    sender = build_sender(send_to, credentials) if send_to else None
    studies, retrieved = _retrieve_all(urls, out, credentials, timeout_s)
    batch = None
    if retrieved:
        try:
            batch = run_batch([study.folder for study in retrieved], model_dir, out, **batch_options)
        except InputError as error:
            if not Path(error.path).resolve().is_relative_to((out / STUDIES_FOLDER).resolve()):
                raise  # not the studies' fault (e.g. the model folder)
            for entry in studies:  # nothing to predict in any retrieved study
                if entry["status"] == "ok":
                    entry.update(status="failed", stage="predict", reason=error.reason)
    cases = _cases_by_study(batch, retrieved)
    for entry in studies:
        mine = [case for case in (batch.cases if batch else ()) if cases.get(case["case_id"]) == entry["study_uid"]]
        entry["case_ids"] = [case["case_id"] for case in mine]
        predict_s = sum(sum(case.get("timings_s", {}).values()) for case in mine)
        if entry["status"] == "ok" and any(case["status"] == "failed" for case in mine):
            entry.update(status="failed", stage="predict", reason="a case failed (see cases)")
        if sender is not None and entry["status"] == "ok":
            _send_study(entry, mine, out, sender)
        if "retrieve_s" in entry:
            entry["round_trip_s"] = round(entry["retrieve_s"] + predict_s + entry.get("send_s", 0.0), 3)
    section = {"send_to": sender.target if sender else None, "studies": studies,
               "cases": {case_id: study_uid for case_id, study_uid in cases.items()},
               "wall_seconds": round(time.perf_counter() - started, 3)}
    report_path = _write_pacs_section(out, section, batch, model_dir, batch_options)
    for entry in studies:
        LOGGER.info("study %s: %s%s", entry["study_uid"] or entry["url"], entry["status"],
                    f" at {entry['stage']}: {entry['reason']}" if entry["status"] != "ok" else "")
    return PacsBatchResult(batch=batch, studies=tuple(studies), report_path=report_path)


def send_local_results(batch: BatchResult, send_to: str, credentials: Credentials | None) -> list[dict[str, Any]]:
    """Send the SEG/RTSTRUCT of every predicted case of a local batch to the study its header names.

    Returns:
        One ``{"case_id", "status", "instances" | "reason"}`` per case with DICOM outputs.
    """
    sender = build_sender(send_to, credentials)
    results = []
    for case in batch.cases:
        files = _case_files(batch.out_dir, case)
        if case["status"] == "failed" or not files:
            continue
        entry: dict[str, Any] = {"case_id": case["case_id"]}
        try:
            study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
            entry.update(status="ok", instances=sender.send(files, study_uid))
        except MedsegError as error:
            entry.update(status="failed", reason=str(error))
        results.append(entry)
    return results


def _retrieve_all(urls: Sequence[str], out: Path, credentials: Credentials | None,
                  timeout_s: float) -> tuple[list[dict[str, Any]], list[RetrievedStudy]]:
    """Retrieve every study; one report entry per URL, and the studies retrieved."""
    entries: list[dict[str, Any]] = []
    retrieved: list[RetrievedStudy] = []
    with make_session(credentials) as session:
        for url in urls:
            entry: dict[str, Any] = {"url": str(url), "study_uid": None, "status": "failed"}
            entries.append(entry)
            start = time.perf_counter()
            try:
                study = parse_study_url(url)
                entry.update(url=study.url, study_uid=study.study_uid)
                if study.study_uid in (item.study.study_uid for item in retrieved):
                    raise PacsError(study.url, "the same study was given twice")
                folder = out / STUDIES_FOLDER / study_folder_name(study.study_uid)
                result = retrieve_study(study, folder, session, timeout_s=timeout_s)
            except PacsError as error:
                entry.update(url=error.url, stage="retrieve", reason=error.reason)
                LOGGER.warning("%s", error)
                continue
            entry.update(status="ok", folder=str(folder.relative_to(out)), series_uids=list(result.series_uids),
                         instances=result.instances, reused=result.reused,
                         retrieve_s=round(time.perf_counter() - start, 3))
            retrieved.append(result)
    return entries, retrieved


def _cases_by_study(batch: BatchResult | None, retrieved: Sequence[RetrievedStudy]) -> dict[str, str]:
    """case id -> StudyInstanceUID, through the cases' SeriesInstanceUIDs."""
    if batch is None:
        return {}
    study_of_series = {series: study.study.study_uid for study in retrieved for series in study.series_uids}
    return {case["case_id"]: study_of_series[case["series_uid"]] for case in batch.cases
            if case.get("series_uid") in study_of_series}


def _case_files(out: Path, case: dict[str, Any]) -> list[Path]:
    """The case's DICOM outputs to send (its report entry names them ``case_x/seg.dcm``)."""
    names = {Path(output).name for output in case.get("outputs", [])}
    return [out / case["case_id"] / name for name in SENT_FILES if name in names]


def _send_study(entry: dict[str, Any], cases: Sequence[dict[str, Any]], out: Path, sender: Sender) -> None:
    """STOW the study's case outputs into it; records instances sent, seconds, and a failure."""
    start = time.perf_counter()
    files = [path for case in cases if case["status"] != "failed" for path in _case_files(out, case)]
    try:
        entry["sent_instances"] = sender.send(files, entry["study_uid"])
    except MedsegError as error:
        entry.update(status="failed", stage="send", reason=str(error))
        LOGGER.warning("%s", error)
    entry["send_s"] = round(time.perf_counter() - start, 3)


def _write_pacs_section(out: Path, section: dict[str, Any], batch: BatchResult | None, model_dir: str | Path,
                        batch_options: dict[str, Any]) -> Path:
    """Add ``pacs`` to the batch's ``OUT/report.json`` and ``report.md`` (a report of no cases when nothing was
    predicted)."""
    if batch is not None and batch.report_path is not None:
        report = json.loads(batch.report_path.read_text(encoding="utf-8"))
    else:
        out.mkdir(parents=True, exist_ok=True)
        report = batch_report.build_report(
            input_path=None, model_dir=model_dir, model_sha256=completion.folder_sha256(model_dir),
            options={key: value for key, value in batch_options.items() if key != "predictor"}, entries=[],
            ignored=[], class_names=(), wall_seconds=section["wall_seconds"])
    report["pacs"] = section
    return batch_report.write_report(out, report)

