"""Study discovery: series grouped by UID, image files listed, non-images skipped with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medseg.errors import InputError
from medseg.io import discover
from medseg.io.dicom_export import write_dicom_series
from medseg.types import Volume


def _volume(shape: tuple[int, int, int] = (8, 9, 6), spacing: tuple[float, float, float] = (1.0, 1.2, 2.5)) -> Volume:
    """A small int16 volume with a known LAS grid (what an axial series gives)."""
    rng = np.random.default_rng(0)
    array = rng.integers(-100, 400, size=(1, *shape)).astype(np.int16)
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = (40.0, -60.0, -20.0)
    return Volume(array=array, affine=affine)


def test_study_folder_lists_every_series_and_skips_non_images(tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_dicom_series(_volume(), study / "a", modality="CT", series_description="axial A")
    write_dicom_series(_volume(spacing=(0.8, 0.8, 3.0)), study / "b", modality="CT", series_description="axial B")
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), study / "extra.nii.gz")
    (study / "notes.txt").write_text("not an image")
    shutil.copy(get_testdata_file("rtstruct.dcm"), study / "rtstruct.dcm")
    shutil.copy(get_testdata_file("test-SR.dcm"), study / "report.dcm")
    shutil.copy(get_testdata_file("rtplan.dcm"), study / "plan.dcm")

    found = discover(study)

    kinds = sorted(source.kind for source in found.sources)
    assert kinds == ["dicom-series", "dicom-series", "nifti"]
    series = [source for source in found.sources if source.kind == "dicom-series"]
    assert {source.description for source in series} == {"axial A", "axial B"}
    assert len({source.series_uid for source in series}) == 2
    by_description = {source.description: source for source in series}
    assert by_description["axial A"].shape == (8, 9, 6)
    assert by_description["axial A"].spacing == pytest.approx((1.0, 1.2, 2.5), abs=1e-4)
    assert by_description["axial B"].spacing == pytest.approx((0.8, 0.8, 3.0), abs=1e-4)
    assert by_description["axial A"].orientation == "LAS"
    assert all(len(source.files) == 6 for source in series)
    nifti = next(source for source in found.sources if source.kind == "nifti")
    assert nifti.shape == (4, 5, 6) and nifti.orientation == "RAS"
    reasons = {item.path.name: item.reason for item in found.skipped}
    assert set(reasons) == {"notes.txt", "rtstruct.dcm", "report.dcm", "plan.dcm"}
    assert "not a DICOM" in reasons["notes.txt"]
    assert "RT structure set" in reasons["rtstruct.dcm"]
    assert "structured report" in reasons["report.dcm"]
    assert "RT plan" in reasons["plan.dcm"]


def test_two_series_in_one_folder_are_two_sources(tmp_path: Path) -> None:
    write_dicom_series(_volume(), tmp_path / "s1", series_description="first")
    write_dicom_series(_volume(), tmp_path / "s2", series_description="second")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for folder in ("s1", "s2"):
        for path in (tmp_path / folder).iterdir():
            shutil.copy(path, mixed / f"{folder}_{path.name}")

    found = discover(mixed)

    assert [source.description for source in found.sources] in (["first", "second"], ["second", "first"])
    assert all(source.path == mixed and len(source.files) == 6 for source in found.sources)
    assert not found.skipped


def test_dicomdir_is_skipped_with_reason(tmp_path: Path) -> None:
    dicomdir = Path(get_testdata_file("DICOMDIR", read=False))
    shutil.copy(dicomdir, tmp_path / "DICOMDIR")
    found = discover(tmp_path)
    assert not found.sources
    assert [item.reason for item in found.skipped] == ["a DICOMDIR index, not an image"]


def test_header_problem_is_reported_not_raised(tmp_path: Path) -> None:
    files = write_dicom_series(_volume(shape=(8, 9, 7)), tmp_path / "gap", series_description="gap")
    files[3].unlink()  # a missing slice in the middle
    found = discover(tmp_path)
    (source,) = found.sources
    assert "missing" in source.problem.lower()


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        discover(tmp_path / "nowhere")
