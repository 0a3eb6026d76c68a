"""`medseg listen` killed with SIGKILL while a study waits finishes it after a restart, and sends it once.

The listener runs as a real subprocess (``python -m medseg listen``); pynetdicom's SCU pushes a
series to it; a second pynetdicom SCP plays the PACS the SEG goes back to and counts what it gets.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from node_helpers import PHI_MARKERS, CollectingSCP, free_port, phi_in_files, phi_series, push, tiny_model_folder, wait_for

from medseg.pacs.node_disk import series_key

REPO = Path(__file__).resolve().parents[2]
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
START_TIMEOUT_S = 600  # the machine's cores are shared with training runs: starting torch can take minutes


def _listen(model: Path, out: Path, port: int, target: str, logs: Path) -> subprocess.Popen:
    stream = logs.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "medseg", "listen", "--model", str(model), "--out", str(out), "--send-to", target,
         "--port", str(port), "--ae-title", "MEDSEG", "--quiet-seconds", "3", "--retry-seconds", "0.5"],
        cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _state(out: Path, key: str) -> str | None:
    try:
        with sqlite3.connect(f"file:{out / 'queue.sqlite3'}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT state FROM series WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else row[0]


def _seg_receipts(pacs: CollectingSCP) -> list[dict]:
    return [item for item in pacs.received if item["sop_class"] == SEG_STORAGE]


@pytest.mark.slow
def test_sigkill_while_a_study_waits_then_restart_sends_it_exactly_once(tmp_path_factory, tmp_path):
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    files = phi_series(tmp_path / "series")
    key = series_key(str(pydicom.dcmread(files[0]).SeriesInstanceUID))
    out, logs, port = tmp_path / "node", tmp_path / "listen.out", free_port()
    with CollectingSCP() as pacs:
        process = _listen(model, out, port, pacs.target, logs)
        try:
            wait_for(lambda: _listening(port) or process.poll() is not None, START_TIMEOUT_S, "the listener to start")
            assert process.poll() is None, logs.read_text()
            assert push(files, port) == [0] * len(files)
            state = _state(out, key)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        assert state in ("received", "complete"), f"the kill must land while the study waits, it was {state}"
        assert _seg_receipts(pacs) == []

        started = time.monotonic()
        process = _listen(model, out, port, pacs.target, logs)
        try:
            wait_for(lambda: _seg_receipts(pacs) or process.poll() is not None, START_TIMEOUT_S, "the SEG after restart")
            assert process.poll() is None, logs.read_text()
            restart_to_seg = time.monotonic() - started
            wait_for(lambda: _state(out, key) == "sent", 120, "the sent mark")
            time.sleep(2.0)  # any second send would happen within the worker's next steps
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 0, logs.read_text()
        finally:
            process.kill()
            process.wait()
    receipts = _seg_receipts(pacs)
    assert len(receipts) == 1, f"the SEG must be sent exactly once, it was sent {len(receipts)} times"
    seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(receipts[0]["data"]))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(files[0]).SeriesInstanceUID
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["cases"]
    assert entry["status"] == "ok" and entry["node"]["state"] == "sent"
    node_log = (out / "node.log").read_text()
    assert node_log.count(f"series {key} segmented") == 1 and node_log.count(f"series {key} sent") == 1
    assert phi_in_files(out) == []
    console = logs.read_text(errors="replace")
    assert not any(marker in console for marker in PHI_MARKERS.values())
    print(f"restart to SEG at the PACS: {restart_to_seg:.1f} s")
