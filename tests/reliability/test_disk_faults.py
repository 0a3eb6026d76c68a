"""Full disk, file-size limit and unwritable output paths: one clear error, no partial file.

Root ignores permission bits, so the refusals here are real kernel ones: EFBIG from
``RLIMIT_FSIZE`` (set in a child process), ENOTDIR from a path whose parent is a file, and
ENOSPC from a 1 MiB tmpfs (skipped when mounting is not permitted).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import uuid
from pathlib import Path

import nibabel as nib
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from medseg_cli.main import main
from processes import context

SIZE = 32


def _study(root: Path, cases: int = 2) -> Path:
    for index in range(cases):
        write_nifti(root / "study" / f"s{index}.nii.gz", seed=index, size=SIZE)
    return root / "study"


def _final_outputs_whole(out: Path) -> None:
    """Every file under its final name reads; no temp file is left."""
    assert not [p for p in out.rglob(".*") if p.is_file()], sorted(out.rglob(".*"))
    for path in out.rglob("*.nii.gz"):
        nib.load(path).get_fdata()
    for path in out.rglob("*.json"):
        json.loads(path.read_text())


def _predict_with_size_limit(argv: list[str], limit: int, log: str) -> None:
    """Child body: cap the size of any file this process writes, then run the CLI."""
    import os
    import sys

    import torch

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    torch.set_num_threads(1)
    from medseg_cli.main import main as cli

    status = cli(argv)
    sys.stdout.flush()
    os._exit(status)


@pytest.mark.limit(180)
def test_file_size_limit_efbig_fails_the_case_clearly(tmp_path_factory: pytest.TempPathFactory,
                                                       tmp_path: Path) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study, out, log = _study(tmp_path), tmp_path / "out", tmp_path / "predict.log"
    argv = ["predict", str(study), "--model", str(model), "--out", str(out), "--probabilities", "--no-progress"]
    child = context().Process(target=_predict_with_size_limit, args=(argv, 48 * 1024, str(log)))
    child.start()
    child.join(120)
    text = log.read_text()
    assert child.exitcode == 1, text
    assert "Traceback" not in text
    report = json.loads((out / "report.json").read_text())
    assert [case["status"] for case in report["cases"]] == ["failed", "failed"]
    for case in report["cases"]:
        assert "probabilities.nii.gz" in case["reason"] and "File too large" in case["reason"], case["reason"]
        assert not (out / case["case_id"] / "complete.json").exists()
    _final_outputs_whole(out)


def test_output_path_under_a_file_is_one_line_error(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study = _study(tmp_path, cases=1)
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way\n")
    status = main(["predict", str(study), "--model", str(model), "--out", str(blocker / "out"), "--no-progress"])
    _, err = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "a_file" in err and ("Not a directory" in err or "not a folder" in err), err
    assert blocker.read_text() == "in the way\n"


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (a real ENOSPC); skipped where mounting is not permitted."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.limit(180)
def test_full_disk_enospc_leaves_no_partial_file(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                                 tiny_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study = _study(tmp_path, cases=3)
    out = tiny_disk / "out"
    # Leave 16 KiB free: less than one case's outputs, however well they compress.
    stats = os.statvfs(tiny_disk)
    (tiny_disk / "filler").write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - 16 * 1024))
    status = main(["predict", str(study), "--model", str(model), "--out", str(out), "--probabilities",
                   "--uncertainty", "--no-progress"])
    stdout, err = capsys.readouterr()
    assert status in (1, 2), stdout + err
    assert "Traceback" not in stdout + err
    assert "No space left on device" in stdout + err, stdout + err
    assert "free some disk space" in stdout + err
    _final_outputs_whole(out)
