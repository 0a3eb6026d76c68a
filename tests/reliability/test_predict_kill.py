"""`medseg predict` over a folder killed with SIGKILL at seeded random moments; the rerun completes every case.

After each kill, every output that exists under its final name must be whole (every
seg.nii.gz reads, every completion record matches its files); the next run continues; the
last run completes every case with masks identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from processes import finish, kill_after, start_cli

from medseg.inference.batch import run_batch
from medseg.inference.completion import file_sha256, read_record
from medseg.io.read import read_labels

CASES = 10
SIZE = 32
SEED = 11


def _check_outputs_whole(out: Path) -> int:
    """Every final-named output is whole; returns the number of complete cases."""
    complete = 0
    for seg in out.glob("case_*/seg.nii.gz"):
        assert read_labels(seg).array.shape == (SIZE, SIZE, SIZE)
    for case_json in out.glob("case_*/case.json"):
        json.loads(case_json.read_text())
    for case_dir in out.glob("case_*"):
        record = read_record(case_dir)
        if record is None:
            continue
        for name, digest in record["outputs"].items():
            assert file_sha256(case_dir / name) == digest, f"{case_dir.name}/{name} differs from its record"
        complete += 1
    if (out / "report.json").exists():
        json.loads((out / "report.json").read_text())
    return complete


@pytest.mark.limit(300)
def test_kills_at_random_moments_then_the_rerun_completes_every_case(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study = tmp_path / "study"
    for index in range(CASES):
        write_nifti(study / f"subject_{index}" / "t1.nii.gz", seed=index, size=SIZE)
    reference = tmp_path / "reference"
    started = time.perf_counter()
    assert run_batch(study, model, reference, uncertainty=True, progress=False).succeeded
    duration = time.perf_counter() - started

    out, log = tmp_path / "out", tmp_path / "predict.log"
    argv = ["predict", str(study), "--model", str(model), "--out", str(out), "--uncertainty", "--no-progress"]
    rng = np.random.default_rng(SEED)
    progress = []
    for delay in rng.uniform(0.05, 0.5, size=4) * duration:
        process = start_cli(argv, log)
        if not kill_after(process, float(delay)):
            break  # finished before the kill: nothing left to interrupt
        progress.append((round(float(delay), 2), _check_outputs_whole(out)))
    print(f"uninterrupted run {duration:.1f} s; kills (delay s, complete cases after):", progress)
    assert len(progress) >= 3
    assert not (out / "report.json").exists() or progress[-1][1] < CASES

    process = start_cli(argv, log)
    assert finish(process, 240) == 0, log.read_text()
    assert _check_outputs_whole(out) == CASES
    report = json.loads((out / "report.json").read_text())
    assert len(report["cases"]) == CASES
    assert {case["status"] for case in report["cases"]} <= {"ok", "skipped-complete"}
    for seg in reference.glob("case_*/seg.nii.gz"):
        again = out / seg.parent.name / "seg.nii.gz"
        np.testing.assert_array_equal(read_labels(again).array, read_labels(seg).array)
    assert not list(out.glob("case_*/.*tmp-*"))
