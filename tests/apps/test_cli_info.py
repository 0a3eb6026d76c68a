"""`medseg info`: good input prints geometry, bad input one line and a non-zero exit, no identifiers."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from medseg_cli.main import main

from medseg.io.dicom_export import write_dicom_series
from medseg.types import Volume

MARKERS = ("ZZNAMEMARKER", "ZZIDMARKER")


def _series(folder: Path) -> list[Path]:
    array = np.arange(6 * 7 * 5, dtype=np.int16).reshape(1, 6, 7, 5)
    affine = np.diag([-0.9, 0.9, 3.0, 1.0])
    return write_dicom_series(
        Volume(array=array, affine=affine),
        folder,
        modality="CT",
        series_description="chest",
        patient_name=MARKERS[0],
        patient_id=MARKERS[1],
    )


def test_info_on_a_dicom_series_prints_geometry_without_identifiers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _series(tmp_path / "series")
    status = main(["info", str(tmp_path / "series")])
    out = capsys.readouterr()
    assert status == 0
    line = next(line for line in out.out.splitlines() if line.startswith("OK"))
    assert "dicom-series" in line and "[CT] 'chest'" in line and "(5 files)" in line
    assert "shape (1, 6, 7, 5)" in line
    assert "spacing 0.9x0.9x3 mm" in line
    assert "orientation LAS" in line
    assert "range [0, 209]" in line
    for marker in MARKERS:
        assert marker not in out.out + out.err


def test_info_on_a_study_lists_good_bad_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _series(tmp_path / "study" / "ct")
    good = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    nib.save(good, tmp_path / "study" / "good.nii")
    bad = tmp_path / "study" / "bad.nii.gz"
    payload = gzip.compress(good.to_bytes())
    bad.write_bytes(payload[: len(payload) // 2])  # truncated
    (tmp_path / "study" / "readme.txt").write_text("hello")

    status = main(["info", str(tmp_path / "study")])

    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert sum(line.startswith("OK") for line in out) == 2
    errors = [line for line in out if line.startswith("ERROR")]
    assert len(errors) == 1 and "bad.nii.gz" in errors[0]
    assert "SKIP  1 file(s): not a DICOM file or a known image format" in out  # counted, never named
    assert out[-1] == "3 scan(s), 1 unreadable, 1 file(s) skipped"


def test_bad_path_gives_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "info", str(tmp_path / "missing.nii.gz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"medseg info: error: {tmp_path / 'missing.nii.gz'}: no such file or folder"
    ]
