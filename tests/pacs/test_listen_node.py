"""The storage node in-process, over real DICOM networking on loopback (pynetdicom SCU -> node -> SCP).

Each test starts a ``StorageNode`` on a free port with the tiny sphere model, pushes small
synthetic MR series to it with pynetdicom's SCU, and checks what reaches a second pynetdicom SCP
that plays the PACS: the SEG of each series exactly once, refusals retried with backoff, broken
series reported without blocking the next, non-images skipped, unknown calling AEs refused, the
disk budget enforced, and no patient identifier anywhere but in DICOM objects.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pydicom
import pytest
from node_helpers import (
    CollectingSCP,
    phi_in_files,
    phi_series,
    push,
    tiny_model_folder,
    wait_for,
)

from medseg.pacs.dimse_scp import INCOMING
from medseg.pacs.dimse_sender import CStoreSender
from medseg.pacs.node import NodeSettings, StorageNode
from medseg.pacs.node_disk import series_key

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_folder(tmp_path_factory.getbasetemp())


@pytest.fixture
def pacs():
    with CollectingSCP() as scp:
        yield scp


def _settings(tmp_path: Path, model: Path, target: str, **changes) -> NodeSettings:
    values = dict(out_dir=tmp_path / "node", model_dir=model, send_to=target, port=0, quiet_seconds=0.5,
                  backoff_s=0.2, max_backoff_s=1.0, poll_s=0.05)
    values.update(changes)
    return NodeSettings(**values)


def _node(settings: NodeSettings, **options) -> StorageNode:
    return StorageNode(settings, sender=CStoreSender(settings.send_to, settings.ae_title), **options)


def _report(node_dir: Path) -> dict:
    return json.loads((node_dir / "report.json").read_text())


def _segs(pacs: CollectingSCP) -> list[dict]:
    return [item for item in pacs.received if item["sop_class"] == SEG_STORAGE]


def test_series_pushed_gets_its_seg_back_once_and_no_phi_outside_dicom(tmp_path, model, pacs, caplog):
    caplog.set_level(logging.DEBUG)
    files = phi_series(tmp_path / "series")
    source = pydicom.dcmread(files[0])
    settings = _settings(tmp_path, model, pacs.target)
    with _node(settings) as node:
        started = time.monotonic()
        assert push(files, node.port) == [0] * len(files)
        wait_for(lambda: _segs(pacs), 300, "the SEG at the PACS")
        round_trip = time.monotonic() - started
        time.sleep(1.0)  # a second send would come within the worker's next steps
    segs = _segs(pacs)
    assert len(segs) == 1, "the SEG of one series must be sent exactly once"
    seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(segs[0]["data"]))
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == len(files)
    assert int(seg.NumberOfFrames) >= 3, "the sphere spans several slices"
    report = _report(settings.out_dir)
    (entry,) = report["cases"]
    assert entry["status"] == "ok" and entry["node"]["state"] == "sent" and entry["node"]["attempts"] == 0
    assert 0 < entry["node"]["round_trip_s"] <= round_trip + 0.5
    assert entry["class_volumes_ml"]["sphere"] > 0.5
    assert report["summary"]["sent"] == 1 and report["queue"]["sent"] == 1
    assert not (settings.out_dir / INCOMING / series_key(source.SeriesInstanceUID)).exists(), \
        "a sent series' received objects are deleted"
    assert phi_in_files(settings.out_dir) == []
    logged = caplog.text
    for marker in ("Quokka", "Zyxwv", "8675309", "ACC-4242"):
        assert marker not in logged
    assert source.SeriesInstanceUID not in logged, "logs name series by hashed key"
    print(f"in-process round trip: {round_trip:.2f} s for a {len(files)}-slice series")


def test_a_lost_sent_mark_or_a_redo_resends_the_same_instance(tmp_path, model, pacs):
    """A lost 'sent' mark (the process died after the PACS accepted) means a resend of the *same* instance;
    a series segmented again from scratch also gets the same UIDs."""
    files = phi_series(tmp_path / "series")
    settings = _settings(tmp_path, model, pacs.target)
    with _node(settings) as node:
        push(files, node.port)
        wait_for(lambda: _segs(pacs), 300, "the first SEG")
        wait_for(lambda: node.queue.counts()["sent"] == 1, 60, "the sent mark")
    key = series_key(pydicom.dcmread(files[0]).SeriesInstanceUID)
    with sqlite3.connect(settings.out_dir / "queue.sqlite3") as db:  # the kill landed before the mark
        db.execute("UPDATE series SET state = 'segmented', sent_at = NULL WHERE key = ?", (key,))
    with _node(settings) as node:
        wait_for(lambda: len(_segs(pacs)) == 2, 300, "the resend")
        wait_for(lambda: node.queue.counts()["sent"] == 1, 60, "the sent mark")
    # Redo from nothing but the received objects: same UIDs again.
    with _node(settings) as node:
        push(files, node.port)  # the PACS pushes the study again: the series is done again
        wait_for(lambda: len(_segs(pacs)) == 3, 300, "the SEG of the re-pushed series")
    uids = {(item["series_uid"], item["sop_instance"]) for item in _segs(pacs)}
    assert len(uids) == 1, f"every send of one series' SEG must carry the same UIDs, got {uids}"


def test_pacs_down_is_retried_with_backoff_then_sent(tmp_path, model, pacs):
    files = phi_series(tmp_path / "series")
    pacs.refuse = True
    settings = _settings(tmp_path, model, pacs.target, backoff_s=0.3, max_backoff_s=2.0, max_attempts=10)
    with _node(settings) as node:
        push(files, node.port)
        # The PACS counts a refusal before the node records it: wait on the node's own record.
        wait_for(lambda: node.queue.rows()[0].attempts >= 3, 300, "three refused attempts recorded")
        row = node.queue.rows()[0]
        assert row.state == "segmented" and pacs.refused >= 3
        assert row.next_try - row.updated == pytest.approx(min(2.0, 0.3 * 2 ** (row.attempts - 1)), abs=0.05)
        report = _report(settings.out_dir)
        assert report["cases"][0]["node"]["send_error"].startswith("C-STORE to PACS@127.0.0.1")
        refused = pacs.refused
        pacs.refuse = False
        wait_for(lambda: _segs(pacs), 300, "the SEG once the PACS takes it")
        wait_for(lambda: node.queue.counts()["sent"] == 1, 60, "the sent mark")
    assert len(_segs(pacs)) == 1 and refused >= 3
    entry = _report(settings.out_dir)["cases"][0]
    assert entry["status"] == "ok" and entry["node"]["state"] == "sent" and entry["node"]["send_error"] is None


def test_gives_up_after_max_attempts_and_reports_it(tmp_path, model, pacs):
    files = phi_series(tmp_path / "series")
    pacs.stop()  # nothing listens there: connection refused
    settings = _settings(tmp_path, model, pacs.target, backoff_s=0.1, max_attempts=3)
    with _node(settings) as node:
        push(files, node.port)
        wait_for(lambda: node.queue.counts()["failed"] == 1, 300, "the series to fail")
    (entry,) = _report(settings.out_dir)["cases"]
    assert entry["status"] == "failed" and entry["stage"] == "send" and entry["node"]["attempts"] == 3
    assert "association" in entry["reason"]


def test_broken_series_is_reported_and_the_next_one_still_goes(tmp_path, model, pacs):
    good = phi_series(tmp_path / "good", seed=3)
    broken = phi_series(tmp_path / "broken", seed=4)
    del broken[len(broken) // 2]  # a missing slice in the middle: uneven spacing, refused by the reader
    settings = _settings(tmp_path, model, pacs.target)
    with _node(settings) as node:
        assert push(broken, node.port) == [0] * len(broken)
        assert push(good, node.port) == [0] * len(good)
        wait_for(lambda: _segs(pacs), 300, "the good series' SEG")
        wait_for(lambda: node.queue.counts()["failed"] == 1, 300, "the broken series failed")
    report = _report(settings.out_dir)
    by_state = {entry["node"]["state"]: entry for entry in report["cases"]}
    assert set(by_state) == {"sent", "failed"}
    failed = by_state["failed"]
    assert failed["status"] == "failed" and failed["stage"] == "read" and "slice" in failed["reason"]
    assert _segs(pacs)[0]["series_uid"] != pydicom.dcmread(broken[0]).SeriesInstanceUID
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(_segs(pacs)[0]["data"])) \
        .ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(good[0]).SeriesInstanceUID


def test_non_image_objects_are_skipped_with_a_logged_reason(tmp_path, model, pacs, caplog):
    caplog.set_level(logging.INFO, logger="medseg")
    files = phi_series(tmp_path / "series")
    report_object = pydicom.dcmread(files[0])
    report_object.SOPClassUID = BASIC_TEXT_SR
    report_object.file_meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    report_object.SOPInstanceUID = report_object.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report_object.Modality = "SR"
    del report_object.PixelData
    sr_path = tmp_path / "sr.dcm"
    report_object.save_as(sr_path)
    settings = _settings(tmp_path, model, pacs.target, quiet_seconds=30)
    with _node(settings) as node:
        assert push([sr_path], node.port) == [0]
        assert node.queue.rows() == []
    key = series_key(report_object.SeriesInstanceUID)
    assert f"skipped a Basic Text SR Storage object of series {key}: not an image" in caplog.text
    assert not (settings.out_dir / INCOMING / key).exists()


def test_only_allowed_calling_ae_titles_and_loopback_by_default(tmp_path, model, pacs):
    files = phi_series(tmp_path / "series")[:2]
    settings = _settings(tmp_path, model, pacs.target, allow_ae=("PACS", "CT1"), quiet_seconds=30)
    with _node(settings) as node:
        assert node.scp._server.server_address[0] == "127.0.0.1"
        assert push(files, node.port, calling="INTRUDER") is None, "an unknown calling AE must be rejected"
        assert push(files, node.port, calling="PACS", called="OTHER") is None, "another called AE: rejected"
        assert node.queue.rows() == []
        assert push(files, node.port, calling="CT1") == [0, 0]
        assert node.queue.rows()[0].instances == 2


def test_disk_budget_refuses_objects_with_a_failure_status(tmp_path, model, pacs):
    files = phi_series(tmp_path / "series", size=40)
    size = sum(path.stat().st_size for path in files)
    budget = size // 2
    settings = _settings(tmp_path, model, pacs.target, quiet_seconds=30, max_disk_gb=budget / 1024 ** 3)
    with _node(settings) as node:
        statuses = push(files, node.port)
        used_at_start = node.budget.used - sum(p.stat().st_size for p in (settings.out_dir / INCOMING).rglob("*.dcm"))
    assert 0 < statuses.count(0) < len(files), "objects go in until the budget is used"
    assert set(statuses) == {0x0000, 0xA700}, "the rest is refused with Out of Resources"
    stored = sum(p.stat().st_size for p in (settings.out_dir / INCOMING).rglob("*.dcm"))
    assert len(list((settings.out_dir / INCOMING).rglob("*.dcm"))) == statuses.count(0)
    assert used_at_start + stored <= budget, "what the node counts stays within its budget"
    assert stored > budget - used_at_start - 2 * size / len(files), "and it used the budget, not less"
