"""Soak: `medseg predict --workers 2` over 200 small scans; every case accounted for, worker memory flat.

Worker RSS is sampled with psutil while the batch runs, against the number of completed
cases; from the first quarter of the cases to the end it may grow by at most 30 MiB per
worker (a leak of even 0.2 MiB per case would exceed that).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from processes import start_cli

CASES = 200
SIZE = 16
MAX_GROWTH_MIB = 30


def _workers(pid: int) -> list[psutil.Process]:
    try:
        return [child for child in psutil.Process(pid).children(recursive=True) if "resource_tracker" not in
                " ".join(child.cmdline())]
    except psutil.Error:
        return []


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.limit(600)
def test_200_cases_with_two_workers(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study, out, log = tmp_path / "study", tmp_path / "out", tmp_path / "soak.log"
    for index in range(CASES):
        write_nifti(study / f"p{index:03d}" / "scan.nii.gz", seed=index, size=SIZE)
    started = time.perf_counter()
    process = start_cli(["predict", str(study), "--model", str(model), "--out", str(out), "--workers", "2",
                         "--no-progress"], log)
    samples: dict[int, list[tuple[int, float]]] = {}
    while process.is_alive() and time.perf_counter() - started < 540:
        done = len(list(out.glob("case_*/complete.json")))
        for worker in _workers(process.pid):
            try:
                samples.setdefault(worker.pid, []).append((done, worker.memory_info().rss / 2**20))
            except psutil.Error:
                continue
        time.sleep(0.05)
    process.join(30)
    elapsed = time.perf_counter() - started
    assert process.exitcode == 0, log.read_text()

    report = json.loads((out / "report.json").read_text())
    assert len(report["cases"]) == CASES
    assert {case["status"] for case in report["cases"]} == {"ok"}
    assert len({case["case_id"] for case in report["cases"]}) == CASES
    assert len(list(out.glob("case_*/seg.nii.gz"))) == CASES

    growth = {}
    for pid, series in samples.items():
        # From two fifths of the cases on, both workers are warm: a worker spawned late is still importing
        # torch while the other one finishes the first cases (a fresh-clone CI run did 200 cases in 9.7 s and
        # caught one worker mid-import at a quarter); sampled every 50 ms, so fast runs still count.
        early = [rss for done, rss in series if CASES * 2 // 5 <= done < CASES // 2]
        late = [rss for done, rss in series if done >= CASES * 9 // 10]
        if early and late:
            growth[pid] = max(late) - min(early)
    print(f"soak: {CASES} cases in {elapsed:.1f} s; worker RSS growth MiB (40 % done -> 90 % done): {growth}")
    assert len(growth) == 2, samples.keys()
    assert all(value < MAX_GROWTH_MIB for value in growth.values()), growth
