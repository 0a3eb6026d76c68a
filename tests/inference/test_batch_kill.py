"""A batch killed with SIGKILL mid-run leaves nothing that looks complete; the rerun finishes every case."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from batch_helpers import read_report, tiny_model_folder, write_nifti

from medseg.inference.batch import run_batch
from medseg.inference.completion import file_sha256, read_record
from medseg.io.read import read_labels

CASES = 8
SIZE = 48
REPO = Path(__file__).resolve().parents[2]


def _study(root: Path) -> Path:
    """CASES scans of SIZE^3 voxels: big enough that a case takes a noticeable moment."""
    study = root / "study"
    for index in range(CASES):
        write_nifti(study / f"s{index}.nii.gz", seed=index, size=SIZE)
    return study


@pytest.mark.slow
def test_rerun_after_sigkill_completes_every_case(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study, out = _study(tmp_path), tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "medseg", "predict", str(study), "--model", str(model), "--out", str(out),
         "--no-progress", "--probabilities"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob("case_*/complete.json")):
            assert process.poll() is None, "the batch ended before the first case completed"
            assert time.monotonic() < deadline, "no case completed within 120 s"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (out / "report.json").exists(), "the batch finished before the kill; make the cases bigger"
    complete_before = {p.parent.name for p in out.glob("case_*/complete.json")}
    assert 1 <= len(complete_before) < CASES

    result = run_batch(study, model, out, probabilities=True, progress=False)
    assert result.succeeded
    statuses = {case["case_id"]: case["status"] for case in read_report(out)["cases"]}
    assert len(statuses) == CASES
    assert all(statuses[case_id] == "skipped-complete" for case_id in complete_before)
    assert all(status == "ok" for case_id, status in statuses.items() if case_id not in complete_before)
    for seg in out.glob("case_*/seg.nii.gz"):
        record = read_record(seg.parent)
        assert record is not None and record["outputs"]["seg.nii.gz"] == file_sha256(seg)
        assert read_labels(seg).array.shape == (SIZE, SIZE, SIZE)
    assert not list(out.glob("case_*/.*tmp-*"))  # temp files of the killed run were cleaned up
