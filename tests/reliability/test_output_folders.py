"""Issue 17, findings 5, 6 and 9: output folders are locked, never followed through links, and
temp files respect the umask and NAME_MAX.

Locks are held by real child processes; links and foreign ownership are real (``chown`` needs root,
and that case is skipped otherwise).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import corpus
import pytest
import yaml
from batch_helpers import tiny_model_folder, write_nifti
from medseg_cli.main import main
from training_helpers import tiny_config_dict, write_tiny_dataset

from medseg.errors import OutputError
from medseg.inference.batch import run_batch
from medseg.inference.case_ids import case_id
from medseg.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from medseg.io.folder_lock import FolderLock
lock = FolderLock(sys.argv[1], "folder").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _holder(folder: Path) -> subprocess.Popen:
    """A child process holding ``folder``'s lock until killed."""
    folder.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    assert child.stdout.readline().strip() == "locked"
    return child


def _stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait(30)


# --- 5: links and foreign folders ----------------------------------------------------------------

def _case_folder(study: Path, out: Path) -> Path:
    return out / case_id("t1.nii.gz", "")


def test_a_case_folder_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path_factory, tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_nifti(study / "t1.nii.gz", seed=1)
    victim = tmp_path / "other-study"
    victim.mkdir()
    (victim / ".seg.nii.gz.tmp-keepme.nii.gz").write_bytes(b"not medseg's")  # a name medseg's cleanup matches
    (victim / "notes.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    _case_folder(study, out).symlink_to(victim, target_is_directory=True)
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    result = run_batch(study, model, out, progress=False)
    (case,) = result.cases
    assert case["status"] == "failed" and "symbolic link" in case["reason"]
    assert sorted(p.name for p in victim.iterdir()) == [".seg.nii.gz.tmp-keepme.nii.gz", "notes.txt"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_case_folder_of_another_user_is_refused(tmp_path_factory, tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_nifti(study / "t1.nii.gz", seed=1)
    out = tmp_path / "out"
    planted = _case_folder(study, out)
    planted.mkdir(parents=True)
    os.chown(planted, 54321, 54321)
    result = run_batch(study, tiny_model_folder(tmp_path_factory.getbasetemp()), out, progress=False)
    assert "belongs to another user" in result.cases[0]["reason"]
    assert list(planted.iterdir()) == []


# --- 6: one writer per folder --------------------------------------------------------------------

def test_a_second_predict_into_a_locked_output_folder_stops_naming_the_holder(tmp_path_factory, tmp_path: Path,
                                                                              capsys) -> None:
    study = tmp_path / "study"
    write_nifti(study / "t1.nii.gz", seed=1)
    out = tmp_path / "out"
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    child = _holder(out)
    try:
        status = main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress"])
        assert status == 2 and f"in use by another medseg process (pid {child.pid})" in capsys.readouterr().err
        assert not (out / "report.json").exists()
    finally:
        _stop(child)
    assert run_batch(study, model, out, progress=False).succeeded  # a killed holder leaves no stale lock
    assert not (out / ".medseg.lock").exists()


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("locked-run")
    dataset = write_tiny_dataset(base / "data")
    config = tiny_config_dict(dataset)
    config["train"]["max_epochs"] = 1
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_into_a_locked_run_folder_stops_fresh_and_resumed(run_config: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    child = _holder(run)
    try:
        assert main(["train", "--config", str(run_config), "--out", str(run)]) == 2
        assert f"pid {child.pid}" in capsys.readouterr().err
        assert not (run / "checkpoints").exists() and not (run / "run.json").exists()
    finally:
        _stop(child)
    assert main(["train", "--config", str(run_config), "--out", str(run)]) == 0
    child = _holder(run)
    try:
        (run / "checkpoints" / ".last.pt.tmp-0000abcd.pt").write_bytes(b"the holder's checkpoint being written")
        assert main(["train", "--resume", str(run)]) == 2
        assert f"pid {child.pid}" in capsys.readouterr().err
        assert (run / "checkpoints" / ".last.pt.tmp-0000abcd.pt").exists()  # the holder's temp file survives
    finally:
        _stop(child)


def test_rank_files_of_another_job_are_never_read_or_deleted(tmp_path: Path) -> None:
    import torch.distributed as dist

    from medseg.inference.batch import RANKS_FOLDER, _merge_ranks

    out = tmp_path / "out"
    (out / RANKS_FOLDER).mkdir(parents=True)
    other_job = out / RANKS_FOLDER / "rank-0.json"
    other_job.write_text(json.dumps([{"case_id": "case_other", "status": "ok"}]))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    merged = _merge_ranks(out, 0, 1, [{"case_id": "case_mine", "status": "ok"}], ["case_mine", "case_other"])
    assert [entry["case_id"] for entry in merged] == ["case_mine"]
    assert json.loads(other_job.read_text())[0]["case_id"] == "case_other"


# --- 9: umask, NAME_MAX ----------------------------------------------------------------------------

def test_atomic_writes_never_change_the_process_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))  # a spy: the real umask runs
    for index in range(5):
        atomic_write_text(tmp_path / f"f{index}.json", "{}")
    assert calls == []


def test_results_respect_a_restrictive_umask_even_with_writer_threads(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    stop = threading.Event()
    loose: list[str] = []

    def other_thread() -> None:  # a thread writing files meanwhile must never get world-writable ones
        count = 0
        while not stop.is_set():
            path = tmp_path / "thread" / f"t{count % 50}"
            path.unlink(missing_ok=True)
            with open(path, "w") as handle:
                handle.write("x")
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                loose.append(path.name)
            count += 1

    (tmp_path / "thread").mkdir()
    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        for index in range(300):
            atomic_write_text(tmp_path / f"r{index}.json", "{}")
        files = corpus.series(tmp_path / "series")  # a folder renamed into place from a temp folder
    finally:
        stop.set()
        worker.join()
        os.umask(previous)
    assert loose == []
    assert {stat.S_IMODE((tmp_path / f"r{i}.json").stat().st_mode) for i in range(300)} == {0o600}
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700  # not chmod 0o755 over the umask


def test_a_valid_250_byte_output_name_can_be_written(tmp_path: Path) -> None:
    name = "r" * 245 + ".json"
    assert len(name.encode()) == 250
    atomic_write_text(tmp_path / name, "{}")
    accented = "é" * 122 + ".nii.gz"  # 251 bytes of UTF-8: the temp name must not cut a character
    atomic_write_text(tmp_path / accented, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, accented])


def test_an_output_name_over_name_max_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(tmp_path / ("r" * 256), "{}")
