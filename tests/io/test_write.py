"""write_labels: labels land on the reference grid, in every format, atomically and anonymously."""

from __future__ import annotations

import math
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from geometry_helpers import rotation

from medseg.errors import InputError, OutputError
from medseg.io.read import read_labels, read_scan
from medseg.io.write import write_labels
from medseg.types import LabelVolume, SourceInfo, Volume

SHAPE = (5, 6, 7)




def make_affine(kind: str) -> np.ndarray:
    matrix = {"RAS": np.eye(3), "LAS": np.diag([-1.0, 1, 1]), "LPS": np.diag([-1.0, -1, 1]),
              "oblique": rotation(-8, 17, 29)}[kind] @ np.diag([0.75, 0.85, 1.25])
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = (-44.5, 63.25, -12.0)
    return affine


def labels_for(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return (np.arange(math.prod(shape)).reshape(shape) % 4).astype(np.int64)


def nifti_reference(tmp_path: Path, kind: str, qform_code: int = 1, sform_code: int = 1) -> Volume:
    affine = make_affine(kind)
    image = nib.Nifti1Image(np.zeros(SHAPE, np.float32), affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    nib.save(image, tmp_path / "scan.nii.gz")
    return read_scan(tmp_path / "scan.nii.gz")


@pytest.mark.parametrize("kind", ["RAS", "LAS", "LPS", "oblique"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip(tmp_path: Path, kind: str, suffix: str) -> None:
    reference = nifti_reference(tmp_path, kind)
    labels = labels_for()
    path = write_labels(labels, tmp_path / f"seg{suffix}", reference)
    back = read_labels(path, reference)
    np.testing.assert_allclose(back.affine, reference.affine, atol=1e-5)
    np.testing.assert_array_equal(back.array, labels)
    assert back.array.dtype == np.uint8
    assert sorted(os.listdir(tmp_path)) == sorted(["scan.nii.gz", f"seg{suffix}"])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_header_is_clean_and_coherent(tmp_path: Path, suffix: str) -> None:
    reference = nifti_reference(tmp_path, "oblique", qform_code=1, sform_code=2)
    path = write_labels(LabelVolume(labels_for(), reference.affine), tmp_path / f"seg{suffix}", reference)
    header = nib.load(path).header
    qform, qform_code = header.get_qform(coded=True)
    sform, sform_code = header.get_sform(coded=True)
    assert (int(qform_code), int(sform_code)) == (1, 2)  # the reference's codes
    np.testing.assert_allclose(qform, sform, atol=1e-5)
    assert header.get_xyzt_units()[0] == "mm"
    assert header["descrip"].item() == b"medseg labels" and header["aux_file"].item() == b""
    assert len(header.extensions) == 0
    assert header.get_intent()[0] == "label"
    assert header.get_data_dtype() == np.uint8


def test_sform_only_reference_gets_a_matching_qform(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "LAS", qform_code=0, sform_code=2)
    header = nib.load(write_labels(labels_for(), tmp_path / "seg.nii", reference)).header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (2, 2)
    np.testing.assert_allclose(header.get_qform(), reference.affine, atol=1e-5)


def test_disagreeing_reference_keeps_both_forms_so_itk_overlays_too(tmp_path: Path) -> None:
    qform = make_affine("RAS")
    sform = qform.copy()
    sform[:3, 3] += (3.0, -1.0, 0.0)
    image = nib.Nifti1Image(np.zeros(SHAPE, np.float32), sform)
    image.set_qform(qform, code=1)
    image.set_sform(sform, code=2)
    nib.save(image, tmp_path / "scan.nii")
    reference = read_scan(tmp_path / "scan.nii")
    path = write_labels(labels_for(), tmp_path / "seg.nii", reference)
    header = nib.load(path).header
    np.testing.assert_allclose(header.get_sform(), sform, atol=1e-5)
    np.testing.assert_allclose(header.get_qform(), qform, atol=1e-5)
    # ITK (qform first, as in 3D Slicer) places scan and labels identically.
    scan_itk, labels_itk = sitk.ReadImage(str(tmp_path / "scan.nii")), sitk.ReadImage(str(path))
    np.testing.assert_allclose(labels_itk.GetOrigin(), scan_itk.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(labels_itk.GetDirection(), scan_itk.GetDirection(), atol=1e-6)


def test_reference_from_nrrd_writes_scanner_codes_and_lps(tmp_path: Path) -> None:
    direction = rotation(5, 10, -20)
    image = sitk.GetImageFromArray(np.zeros(SHAPE[::-1], np.float32))
    image.SetDirection(direction.ravel().tolist())
    image.SetSpacing((0.5, 0.6, 3.0))
    image.SetOrigin((10.0, 20.0, -30.0))
    sitk.WriteImage(image, str(tmp_path / "scan.nrrd"))
    reference = read_scan(tmp_path / "scan.nrrd")
    nifti = write_labels(labels_for(), tmp_path / "seg.nii.gz", reference)
    header = nib.load(nifti).header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 1)
    nrrd = write_labels(labels_for(), tmp_path / "seg.nrrd", reference)
    written = sitk.ReadImage(str(nrrd))
    np.testing.assert_allclose(written.GetDirection(), direction.ravel(), atol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), (10.0, 20.0, -30.0), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written).transpose(2, 1, 0), labels_for())


def test_in_memory_reference(tmp_path: Path) -> None:
    reference = Volume(array=np.zeros((1, *SHAPE), np.float32), affine=make_affine("LPS"),
                       source=SourceInfo(path="", format="memory"))
    back = read_labels(write_labels(labels_for(), tmp_path / "out" / "deep" / "seg.nii.gz", reference))
    np.testing.assert_allclose(back.affine, reference.affine, atol=1e-5)


@pytest.mark.parametrize(("high", "dtype"), [(255, np.uint8), (300, np.uint16), (70000, np.int32)])
def test_smallest_type(tmp_path: Path, high: int, dtype: type) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    labels = labels_for()
    labels[0, 0, 0] = high
    path = write_labels(labels, tmp_path / "seg.nii.gz", reference)
    assert nib.load(path).get_data_dtype() == dtype
    np.testing.assert_array_equal(read_labels(path).array, labels)


def test_bool_mask(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    path = write_labels(labels_for() > 1, tmp_path / "mask.nii", reference)
    np.testing.assert_array_equal(read_labels(path).array, (labels_for() > 1).astype(np.uint8))


# ---- refused outputs --------------------------------------------------------------------


def test_shape_mismatch(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    with pytest.raises(InputError, match=r"label shape \(5, 6, 6\) does not match the grid \(5, 6, 7\) of .*scan\.nii\.gz"):
        write_labels(labels_for((5, 6, 6)), tmp_path / "seg.nii.gz", reference)
    assert os.listdir(tmp_path) == ["scan.nii.gz"]


def test_label_volume_on_another_grid(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    other = reference.affine.copy()
    other[0, 3] += 1.0
    with pytest.raises(InputError, match=r"affine does not match .*differ by up to 1 mm"):
        write_labels(LabelVolume(labels_for().astype(np.uint8), other), tmp_path / "seg.nii", reference)


def test_float_and_negative_labels(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    with pytest.raises(InputError, match="labels must be integers, got float32"):
        write_labels(labels_for().astype(np.float32), tmp_path / "seg.nii", reference)
    with pytest.raises(InputError, match="negative label value -1"):
        write_labels(labels_for() - 1, tmp_path / "seg.nii", reference)


@pytest.mark.parametrize("name", ["seg.png", "seg.mhd", "seg.nhdr", "seg"])
def test_unsupported_output_suffix(tmp_path: Path, name: str) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    with pytest.raises(OutputError, match="cannot write labels as"):
        write_labels(labels_for(), tmp_path / name, reference)
    assert os.listdir(tmp_path) == ["scan.nii.gz"]


def test_output_folder_blocked_by_a_file(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    (tmp_path / "out").write_text("a file where the folder should be")
    with pytest.raises(OutputError, match="out/seg.nii.gz: cannot write"):
        write_labels(labels_for(), tmp_path / "out" / "seg.nii.gz", reference)
    assert sorted(os.listdir(tmp_path)) == ["out", "scan.nii.gz"]


def test_overwrite_leaves_no_temp_files(tmp_path: Path) -> None:
    reference = nifti_reference(tmp_path, "RAS")
    for _ in range(2):
        for suffix in (".nii.gz", ".mha"):
            write_labels(labels_for(), tmp_path / f"seg{suffix}", reference)
    assert sorted(os.listdir(tmp_path)) == ["scan.nii.gz", "seg.mha", "seg.nii.gz"]
