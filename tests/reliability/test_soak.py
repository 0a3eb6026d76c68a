"""Soak: `medseg predict --workers 2` over 200 small scans; every case accounted for, worker memory flat.

Worker RSS is sampled with psutil while the batch runs, against that worker's own progress
(its count of write system calls: every case writes its outputs and sends its result back,
while importing torch and loading the model write nothing). From 15 % of a worker's own
writes to the end its RSS may grow by at most 20 MiB (a leak of 0.3 MiB per case would
exceed that). Each worker is measured on its own clock because the two start at different
times: on a loaded two-core CI machine one worker was still importing torch when the other
had finished 40 % of the cases.
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
MAX_GROWTH_MIB = 20


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
        for worker in _workers(process.pid):
            try:
                with worker.oneshot():
                    sample = (worker.io_counters().write_count, worker.memory_info().rss / 2**20)
            except psutil.Error:
                continue
            samples.setdefault(worker.pid, []).append(sample)
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
        # A worker's own progress: its writes so far against the most it made. From 15 % of them on it is
        # warm (torch imported, model loaded, first cases' buffers allocated); sampled every 50 ms.
        total_writes = max(writes for writes, _ in series)
        early = [rss for writes, rss in series if 0.15 * total_writes <= writes < 0.5 * total_writes]
        late = [rss for writes, rss in series if writes >= 0.9 * total_writes]
        if early and late:
            growth[pid] = max(late) - min(early)
    print(f"soak: {CASES} cases in {elapsed:.1f} s; worker RSS growth MiB (15 % -> 90 % of its own writes): "
          f"{growth}")
    assert len(growth) == 2, samples.keys()
    assert all(value < MAX_GROWTH_MIB for value in growth.values()), growth
