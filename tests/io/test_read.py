"""read_scan dispatch, read_case grid checks, read_labels integer and grid checks."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import InputError
from medseg.io.dicom_export import write_dicom_series
from medseg.io.read import read_case, read_labels, read_scan
from medseg.types import Volume

SHAPE = (5, 6, 7)


def affine_with(offset: float = 0.0) -> np.ndarray:
    affine = np.diag([-0.8, 0.9, 1.5, 1.0])
    affine[:3, 3] = (30.0 + offset, -20.0, 10.0)
    return affine


def save_nifti(data: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    affine = affine_with() if affine is None else affine
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def voxels(shape: tuple[int, ...] = SHAPE, dtype: type = np.float32) -> np.ndarray:
    return np.arange(math.prod(shape)).reshape(shape).astype(dtype)


# ---- read_scan --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".NII.GZ", ".nrrd", ".mha"])
def test_read_scan_dispatches_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scan{suffix}"
    if "nii" in suffix.lower():
        save_nifti(voxels(), path)
    else:
        image = sitk.GetImageFromArray(np.ascontiguousarray(voxels().transpose(2, 1, 0)))
        sitk.WriteImage(image, str(path))
    volume = read_scan(path)
    np.testing.assert_array_equal(volume.array[0], voxels())


def test_read_scan_names_a_single_channel(tmp_path: Path) -> None:
    volume = read_scan(save_nifti(voxels(), tmp_path / "t1.nii.gz"), modalities=("T1",))
    assert volume.channel_names == ("T1",)


def test_read_scan_passes_the_cap(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="limit of 10"):
        read_scan(save_nifti(voxels(), tmp_path / "a.nii"), max_voxels=10)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist.*check the path"):
        read_scan(tmp_path / "nope.nii.gz")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "series" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no files"):
        read_scan(tmp_path / "series")


@pytest.mark.parametrize("name", ["scan.png", "notes.txt", "old.hdr", "brain.mgz"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x89PNG....")
    with pytest.raises(InputError, match="unknown scan format.*NIfTI.*DICOM"):
        read_scan(tmp_path / name)


def test_dicom_folder_goes_to_the_series_reader(tmp_path: Path) -> None:
    source = Volume(array=voxels(dtype=np.float32)[None], affine=affine_with())
    write_dicom_series(source, tmp_path / "series")
    volume = read_scan(tmp_path / "series", modalities=("CT",))
    np.testing.assert_allclose(volume.affine, source.affine, atol=1e-3)
    np.testing.assert_array_equal(volume.array, source.array)
    assert volume.channel_names == ("CT",)


# ---- read_case --------------------------------------------------------------------------


def test_read_case_stacks_channels(tmp_path: Path) -> None:
    first = save_nifti(voxels(), tmp_path / "t1.nii.gz")
    second = save_nifti(voxels() * 2, tmp_path / "t2.nii.gz")
    volume = read_case([first, second], ("T1", "T2"))
    assert volume.array.shape == (2, *SHAPE) and volume.channel_names == ("T1", "T2")
    np.testing.assert_array_equal(volume.array[1], voxels() * 2)
    assert volume.source.path == str(first)
    assert volume.source.header["channel_paths"] == [str(first), str(second)]


def test_read_case_single_4d_file(tmp_path: Path) -> None:
    path = save_nifti(voxels((*SHAPE, 2)), tmp_path / "brats.nii.gz")
    volume = read_case([path], ("FLAIR", "T1w"))
    assert volume.channel_names == ("FLAIR", "T1w") and volume.array.shape == (2, *SHAPE)


def test_read_case_accepts_float32_rounding(tmp_path: Path) -> None:
    first = save_nifti(voxels(), tmp_path / "a.nii")
    second = save_nifti(voxels(), tmp_path / "b.nii", affine_with(offset=1e-5))
    assert read_case([first, second], ("a", "b")).array.shape[0] == 2


def test_read_case_shape_mismatch_names_both_files(tmp_path: Path) -> None:
    first = save_nifti(voxels(), tmp_path / "t1.nii.gz")
    second = save_nifti(voxels((5, 6, 8)), tmp_path / "t2.nii.gz")
    with pytest.raises(InputError, match=r"t2\.nii\.gz: its grid differs from that of .*t1\.nii\.gz \(shape \(5, 6, 7\) vs \(5, 6, 8\)\).*resample"):
        read_case([first, second], ("T1", "T2"))


def test_read_case_shifted_grid(tmp_path: Path) -> None:
    first = save_nifti(voxels(), tmp_path / "t1.nii")
    second = save_nifti(voxels(), tmp_path / "t2.nii", affine_with(offset=0.01))
    with pytest.raises(InputError, match=r"voxel positions differ by up to 0\.01 mm"):
        read_case([first, second], ("T1", "T2"))


def test_read_case_flipped_axis(tmp_path: Path) -> None:
    flipped = affine_with()
    flipped[:, 0] *= -1  # same voxel sizes, i axis reversed (and origin moved)
    flipped[3, 3] = 1
    first = save_nifti(voxels(), tmp_path / "t1.nii")
    second = save_nifti(voxels(), tmp_path / "t2.nii", flipped)
    with pytest.raises(InputError, match="axis directions by 2"):
        read_case([first, second], ("T1", "T2"))


def test_read_case_count_mismatch(tmp_path: Path) -> None:
    path = save_nifti(voxels(), tmp_path / "t1.nii")
    with pytest.raises(InputError, match=r"2 file\(s\) for 3 channel\(s\)"):
        read_case([path, path], ("a", "b", "c"))


def test_read_case_4d_among_several_files(tmp_path: Path) -> None:
    first = save_nifti(voxels(), tmp_path / "t1.nii")
    second = save_nifti(voxels((*SHAPE, 2)), tmp_path / "t2.nii")
    with pytest.raises(InputError, match=r"t2\.nii: the file holds 2 channel\(s\)"):
        read_case([first, second], ("T1", "T2"))


# ---- read_labels ------------------------------------------------------------------------


def test_read_labels_integer_file(tmp_path: Path) -> None:
    labels = (voxels(dtype=np.int16) % 3)
    reference = read_scan(save_nifti(voxels(), tmp_path / "scan.nii.gz"))
    result = read_labels(save_nifti(labels, tmp_path / "seg.nii.gz"), reference)
    assert result.array.dtype == np.uint8
    np.testing.assert_array_equal(result.array, labels)
    np.testing.assert_allclose(result.affine, reference.affine)


def test_read_labels_integral_floats_are_cast(tmp_path: Path) -> None:
    labels = (voxels() % 4).astype(np.float32)
    result = read_labels(save_nifti(labels, tmp_path / "seg.nii"))
    assert result.array.dtype == np.uint8 and result.array.max() == 3


def test_read_labels_large_values(tmp_path: Path) -> None:
    labels = voxels(dtype=np.int32) * 1000
    result = read_labels(save_nifti(labels, tmp_path / "seg.nii"))
    assert result.array.dtype == np.int32  # 209000 > 65535
    np.testing.assert_array_equal(result.array, labels)


def test_read_labels_big_endian_integers_keep_exact_values(tmp_path: Path) -> None:
    labels = voxels(dtype=np.int16) + 100  # up to 309: needs uint16
    image = nib.Nifti1Image(labels, affine_with(), header=nib.Nifti1Header(endianness=">"))
    image.set_qform(affine_with(), code=1)
    nib.save(image, tmp_path / "be.nii")
    assert nib.load(tmp_path / "be.nii").header.endianness == ">"
    result = read_labels(tmp_path / "be.nii")
    assert result.array.dtype == np.uint16 and result.array.dtype.isnative
    np.testing.assert_array_equal(result.array, labels)


def test_read_labels_nrrd(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray((voxels(dtype=np.uint16) % 5).transpose(2, 1, 0)))
    sitk.WriteImage(image, str(tmp_path / "seg.nrrd"))
    result = read_labels(tmp_path / "seg.nrrd")
    np.testing.assert_array_equal(result.array, voxels(dtype=np.uint8) % 5)


def test_read_labels_non_integral(tmp_path: Path) -> None:
    labels = (voxels() % 4).astype(np.float32)
    labels[1, 2, 3] = 0.5
    with pytest.raises(InputError, match=r"1 voxels hold non-integer values \(e\.g\. .*0\.5.*nearest-neighbour"):
        read_labels(save_nifti(labels, tmp_path / "seg.nii"))


def test_read_labels_negative(tmp_path: Path) -> None:
    labels = voxels(dtype=np.int16) - 1
    with pytest.raises(InputError, match="negative label value -1"):
        read_labels(save_nifti(labels, tmp_path / "seg.nii"))


def test_read_labels_shape_mismatch_names_both(tmp_path: Path) -> None:
    reference = read_scan(save_nifti(voxels(), tmp_path / "scan.nii.gz"))
    path = save_nifti(voxels((5, 6, 6), np.uint8), tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=r"seg\.nii\.gz: .*does not match its scan .*scan\.nii\.gz \(shape \(5, 6, 7\) vs \(5, 6, 6\)\)"):
        read_labels(path, reference)


def test_read_labels_affine_mismatch(tmp_path: Path) -> None:
    reference = read_scan(save_nifti(voxels(), tmp_path / "scan.nii.gz"))
    path = save_nifti(voxels(dtype=np.uint8), tmp_path / "seg.nii.gz", affine_with(offset=0.5))
    with pytest.raises(InputError, match=r"differ by up to 0\.5 mm.*nearest-neighbour"):
        read_labels(path, reference)


def test_read_labels_4d(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds 2 channel\(s\).*a label map must be a single 3D volume"):
        read_labels(save_nifti(voxels((*SHAPE, 2), np.uint8), tmp_path / "seg.nii"))


def test_read_labels_wrong_format_and_missing(tmp_path: Path) -> None:
    (tmp_path / "seg.png").write_bytes(b"x")
    with pytest.raises(InputError, match="must be NIfTI, NRRD or MetaImage"):
        read_labels(tmp_path / "seg.png")
    with pytest.raises(InputError, match="does not exist"):
        read_labels(tmp_path / "none.nii.gz")
