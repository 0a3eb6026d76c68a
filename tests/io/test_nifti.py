"""NIfTI reading: geometry round trips, nibabel's shipped edge cases, and every refused input."""

from __future__ import annotations

import gzip
import logging
import math
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from geometry_helpers import rotation

from medseg.errors import InputError
from medseg.io.nifti import read_nifti

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
CAP = 10**9
SHAPE = (5, 6, 7)




def make_affine(kind: str) -> np.ndarray:
    """Voxel -> RAS affines of several orientations, spacing (0.8, 0.9, 1.5) mm."""
    spacing = np.diag([0.8, 0.9, 1.5])
    matrix = {
        "RAS": np.eye(3),
        "LAS": np.diag([-1.0, 1, 1]),
        "LPS": np.diag([-1.0, -1, 1]),
        "oblique": rotation(12, -20, 33),
    }[kind] @ spacing
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = (-91.5, 40.25, -17.125)
    return affine


def voxels(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Distinct value per voxel, so any axis mix-up shows."""
    return np.arange(math.prod(shape), dtype=np.float32).reshape(shape)


def save(data: np.ndarray, affine: np.ndarray, path: Path, qform_code: int = 1, sform_code: int = 1,
         image_class: type = nib.Nifti1Image) -> Path:
    image = image_class(data, affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    nib.save(image, path)
    return path


@pytest.mark.parametrize("kind", ["RAS", "LAS", "LPS", "oblique"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_geometry_round_trip(tmp_path: Path, kind: str, suffix: str) -> None:
    affine = make_affine(kind)
    data = voxels()
    volume = read_nifti(save(data, affine, tmp_path / f"s{suffix}"), max_voxels=CAP)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert volume.array.shape == (1, *SHAPE) and volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array[0], data)
    assert volume.channel_names == ("image",)
    assert volume.source.format == "nifti" and volume.source.header["affine_source"] == "sform"
    if kind != "oblique":
        assert volume.orientation == kind
    np.testing.assert_allclose(volume.spacing, (0.8, 0.9, 1.5), atol=1e-6)


def test_nifti2_round_trip(tmp_path: Path) -> None:
    affine = make_affine("oblique")
    path = save(voxels(), affine, tmp_path / "n2.nii.gz", image_class=nib.Nifti2Image)
    volume = read_nifti(path, max_voxels=CAP)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(volume.array[0], voxels())
    assert volume.source.header["nifti_version"] == 2


def test_shipped_nifti2_4d_is_two_channels_with_modalities() -> None:
    path = NIBABEL_DATA / "example_nifti2.nii.gz"
    with pytest.raises(InputError, match="holds 2 volumes"):
        read_nifti(path, max_voxels=CAP)
    volume = read_nifti(path, max_voxels=CAP, modalities=("T1", "T2"))
    expected = nib.load(path).get_fdata()
    assert volume.array.shape == (2, 32, 20, 12) and volume.channel_names == ("T1", "T2")
    np.testing.assert_array_equal(volume.array[1], expected[..., 1])
    np.testing.assert_allclose(volume.affine, nib.load(path).affine, atol=1e-6)


def test_shipped_big_endian_file_reads_as_native_float32() -> None:
    path = NIBABEL_DATA / "anatomical.nii"
    assert nib.load(path).header.endianness == ">"
    volume = read_nifti(path, max_voxels=CAP)
    assert volume.array.dtype == np.dtype("float32") and volume.array.dtype.isnative
    np.testing.assert_array_equal(volume.array[0], nib.load(path).get_fdata())
    assert volume.orientation == "LAS"


def test_shipped_sform_only_file_uses_the_sform() -> None:
    path = NIBABEL_DATA / "standard.nii.gz"
    volume = read_nifti(path, max_voxels=CAP)
    header = nib.load(path).header
    assert (volume.source.header["qform_code"], volume.source.header["sform_code"]) == (0, 2)
    np.testing.assert_allclose(volume.affine, header.get_sform(), atol=1e-6)


def test_qform_only_file_uses_the_qform(tmp_path: Path) -> None:
    affine = make_affine("LPS")
    volume = read_nifti(save(voxels(), affine, tmp_path / "q.nii", sform_code=0), max_voxels=CAP)
    assert volume.source.header["affine_source"] == "qform"
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)


def test_shipped_4d_files_need_modalities() -> None:
    with pytest.raises(InputError, match="holds 20 volumes.*give the modalities"):
        read_nifti(NIBABEL_DATA / "functional.nii", max_voxels=CAP)
    with pytest.raises(InputError, match=r"holds 2 channel\(s\).*3 \(T1, T2, FLAIR\) were expected"):
        read_nifti(NIBABEL_DATA / "example4d.nii.gz", max_voxels=CAP, modalities=("T1", "T2", "FLAIR"))


def test_4d_channels_keep_voxel_order(tmp_path: Path) -> None:
    data = voxels((*SHAPE, 3))
    volume = read_nifti(save(data, make_affine("RAS"), tmp_path / "c.nii.gz"), max_voxels=CAP,
                        modalities=("a", "b", "c"))
    for channel in range(3):
        np.testing.assert_array_equal(volume.array[channel], data[..., channel])


def test_nifti_vector_layout_dim5_is_channels(tmp_path: Path) -> None:
    data = voxels((*SHAPE, 1, 2))
    volume = read_nifti(save(data, make_affine("RAS"), tmp_path / "v.nii"), max_voxels=CAP, modalities=("a", "b"))
    np.testing.assert_array_equal(volume.array[1], data[..., 0, 1])


def test_trailing_length_one_axis_is_3d(tmp_path: Path) -> None:
    volume = read_nifti(save(voxels((*SHAPE, 1)), make_affine("RAS"), tmp_path / "t.nii"), max_voxels=CAP)
    assert volume.array.shape == (1, *SHAPE)


def test_scaled_integers_give_scaled_values(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.arange(210, dtype=np.int16).reshape(SHAPE), make_affine("RAS"))
    image.header.set_slope_inter(2.0, -1024.0)
    image.set_qform(make_affine("RAS"), 1)
    nib.save(image, tmp_path / "ct.nii.gz")
    volume = read_nifti(tmp_path / "ct.nii.gz", max_voxels=CAP)
    assert volume.array[0, 0, 0, 0] == -1024.0 and volume.array[0, -1, -1, -1] == 209 * 2 - 1024


def test_metre_units_are_converted_to_mm(tmp_path: Path) -> None:
    affine = make_affine("RAS")
    metres = affine.copy()
    metres[:3, :] /= 1000
    image = nib.Nifti1Image(voxels(), metres)
    image.header.set_xyzt_units("meter")
    nib.save(image, tmp_path / "m.nii")
    volume = read_nifti(tmp_path / "m.nii", max_voxels=CAP)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    assert volume.source.header["space_unit"] == "meter"


# ---- refused inputs ---------------------------------------------------------------------


def test_truncated_nii(tmp_path: Path) -> None:
    path = save(voxels(), make_affine("RAS"), tmp_path / "t.nii")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"truncated: 1,092 bytes where the header needs 1,192") as caught:
        read_nifti(path, max_voxels=CAP)
    assert caught.value.path == str(path) and "copy or export it again" in caught.value.hint


def test_truncated_nii_gz_stream(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    path = save(data, make_affine("RAS"), tmp_path / "t.nii.gz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cannot read the voxel data.*Compressed file ended"):
        read_nifti(path, max_voxels=CAP)


def test_complete_gzip_of_a_truncated_nii(tmp_path: Path) -> None:
    raw = save(voxels(), make_affine("RAS"), tmp_path / "t.nii").read_bytes()
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(InputError, match="Expected 840 bytes, got 740"):
        read_nifti(path, max_voxels=CAP)


def _huge_header(tmp_path: Path, suffix: str) -> Path:
    """A small file whose header claims a 30000^3 float32 grid (~108 TB)."""
    raw = bytearray(save(voxels(), make_affine("RAS"), tmp_path / "small.nii").read_bytes())
    raw[40:48] = np.array([3, 30000, 30000, 30000], dtype="<i2").tobytes()  # dim[0..3]
    path = tmp_path / f"huge{suffix}"
    path.write_bytes(gzip.compress(bytes(raw)) if suffix.endswith(".gz") else bytes(raw))
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_header_claiming_terabytes_is_refused_before_allocating(tmp_path: Path, suffix: str) -> None:
    path = _huge_header(tmp_path, suffix)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"30000x30000x30000 grid \(27,000,000,000,000 voxels.*raise data.max_voxels"):
        read_nifti(path, max_voxels=CAP)
    # Even with no cap, the file size (or gzip's 1032:1 limit) proves the header wrong.
    expected = "truncated" if suffix == ".nii" else "gzip file can hold at most"
    with pytest.raises(InputError, match=expected):
        read_nifti(path, max_voxels=10**15)
    assert time.perf_counter() - start < 1.0


def test_voxel_cap(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="210 voxels per channel.*limit of 100"):
        read_nifti(save(voxels(), make_affine("RAS"), tmp_path / "c.nii"), max_voxels=100)


def test_sheared_sform(tmp_path: Path) -> None:
    sheared = make_affine("RAS")
    sheared[0, 1] = 0.2  # the j axis leans towards x
    image = nib.Nifti1Image(voxels(), sheared)
    image.set_qform(make_affine("RAS"), code=1)
    image.set_sform(sheared, code=2)
    nib.save(image, tmp_path / "shear.nii")
    with pytest.raises(InputError, match=r"sform is sheared: .* 12\.\d+ degrees.*sform_code to 0"):
        read_nifti(tmp_path / "shear.nii", max_voxels=CAP)


def test_both_codes_zero(tmp_path: Path) -> None:
    path = save(voxels(), make_affine("RAS"), tmp_path / "z.nii", qform_code=0, sform_code=0)
    with pytest.raises(InputError, match="both qform_code and sform_code are 0.*dcm2niix"):
        read_nifti(path, max_voxels=CAP)


def test_nan_and_inf_voxels_are_counted(tmp_path: Path) -> None:
    data = voxels()
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    with pytest.raises(InputError, match=r"4 of 210 voxels are not finite \(3 NaN, 1 infinite\)"):
        read_nifti(save(data, make_affine("RAS"), tmp_path / "n.nii.gz"), max_voxels=CAP)


def test_disagreeing_qform_and_sform_warns_and_uses_sform(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    qform = make_affine("RAS")
    sform = qform.copy()
    sform[:3, 3] += (2.0, 0.0, 0.0)
    image = nib.Nifti1Image(voxels(), sform)
    image.set_qform(qform, code=1)
    image.set_sform(sform, code=2)
    path = tmp_path / "d.nii"
    nib.save(image, path)
    with caplog.at_level(logging.WARNING, logger="medseg.io.nifti"):
        volume = read_nifti(path, max_voxels=CAP)
    np.testing.assert_allclose(volume.affine, sform, atol=1e-5)
    assert volume.source.header["affine_source"] == "sform"
    assert volume.source.header["qform_sform_max_diff_mm"] == pytest.approx(2.0, abs=1e-4)
    assert "qform and sform disagree by up to 2 mm; using the sform" in caplog.text and str(path) in caplog.text


def test_agreeing_qform_and_sform_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        read_nifti(save(voxels(), make_affine("oblique"), tmp_path / "a.nii"), max_voxels=CAP)
    assert caplog.text == ""


def test_cifti_file_is_not_a_volume() -> None:
    with pytest.raises(InputError, match="Cifti2Image, not a NIfTI volume"):
        read_nifti(NIBABEL_DATA / "row_major.dconn.nii", max_voxels=CAP)


def test_complex_voxels(tmp_path: Path) -> None:
    image = nib.Nifti1Image(voxels().astype(np.complex64), make_affine("RAS"))
    nib.save(image, tmp_path / "c.nii")
    with pytest.raises(InputError, match="complex or RGB"):
        read_nifti(tmp_path / "c.nii", max_voxels=CAP)


@pytest.mark.parametrize(("content", "reason"), [(b"", "Empty file"), (b"x" * 400, "Cannot work out file type")])
def test_not_a_nifti(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "junk.nii"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"not a readable NIfTI file.*{reason}"):
        read_nifti(path, max_voxels=CAP)


def test_gz_suffix_on_a_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(save(voxels(), make_affine("RAS"), tmp_path / "p.nii").read_bytes())
    with pytest.raises(InputError, match="not a gzip file"):
        read_nifti(path, max_voxels=CAP)
