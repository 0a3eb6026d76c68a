"""Atomic writes: the result appears whole or not at all, and failures leave no temp file."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from medseg.errors import OutputError
from medseg.io.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    full_suffix,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("a.nii.gz", ".nii.gz"), ("case.001.nii.gz", ".nii.gz"), ("x.mha", ".mha"), ("notes", ""), ("t.tar.gz", ".tar.gz")],
)
def test_full_suffix(name: str, suffix: str) -> None:
    assert full_suffix(name) == suffix


def test_temp_file_is_hidden_in_the_same_folder_with_the_same_suffix(tmp_path: Path) -> None:
    final = tmp_path / "labels.nii.gz"
    with atomic_path(final) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".labels.tmp-")
        assert temp.name.endswith(".nii.gz")
        assert temp.exists() and not final.exists()
        temp.write_bytes(b"abc")
    assert final.read_bytes() == b"abc"
    assert os.listdir(tmp_path) == ["labels.nii.gz"]


def test_result_gets_the_usual_permissions_not_mkstemps_private_ones(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_text_and_bytes_replace_existing_files(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    assert atomic_write_text(target, "new é") == target
    assert target.read_text(encoding="utf-8") == "new é"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["report.json"]


def test_error_in_the_block_propagates_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.nii"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="writer failed"):
        with atomic_path(target) as temp:
            temp.write_bytes(b"half")
            raise ValueError("writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.nii"]


def test_oserror_in_the_block_becomes_output_error_naming_path_and_reason(tmp_path: Path) -> None:
    # The writer's OSError is raised by hand here: this proves the conversion and the clean-up,
    # the next test makes the file system itself refuse the write.
    target = tmp_path / "b.nii.gz"
    with pytest.raises(OutputError) as caught:
        with atomic_path(target) as temp:
            temp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    message = str(caught.value)
    assert str(target) in message and "No space left on device" in message and "free some disk space" in message
    assert os.listdir(tmp_path) == []


def test_a_real_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse writes past 1 kB (EFBIG), as a full disk would midway."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = (
        "import resource, signal\n"
        "from medseg.io.atomic import atomic_write_bytes\n"
        "from medseg.errors import OutputError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n"
        f"    atomic_write_bytes({str(target)!r}, b'x' * 100_000)\n"
        "except OutputError as error:\n"
        "    print('OutputError:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "OutputError:" in result.stdout, result.stderr
    assert "File too large" in result.stdout and str(target) in result.stdout
    assert os.listdir(tmp_path) == ["big.bin"]
    assert target.read_bytes() == b"old"


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="Not a directory"):
        with atomic_path(blocker / "out.nii.gz"):
            pytest.fail("the block must not run")
    assert os.listdir(tmp_path) == ["not_a_folder"]


def test_missing_parent_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="create the output folder first"):
        atomic_write_text(tmp_path / "missing" / "a.txt", "x")
    assert os.listdir(tmp_path) == []


def test_final_path_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.nii").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path / "out.nii", "x")
    assert os.listdir(tmp_path) == ["out.nii"]


def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            # root ignores folder permissions: this test proves nothing there, so say so.
            pytest.skip("running as root: a read-only folder is still writable; see test_parent_is_a_file")
        with pytest.raises(OutputError, match="Permission denied"):
            atomic_write_text(folder / "a.txt", "x")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)
