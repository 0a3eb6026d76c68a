"""NRRD and MetaImage reading through SimpleITK: axes, LPS -> RAS, and refused inputs."""

from __future__ import annotations

import math
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from geometry_helpers import rotation

from medseg.errors import InputError
from medseg.io.nifti import read_nifti
from medseg.io.sitk_image import read_sitk_image
from medseg.types import LPS_TO_RAS

CAP = 10**9
SHAPE = (5, 6, 7)  # (I, J, K) = ITK's (x, y, z)




DIRECTIONS = {  # ITK direction cosines (LPS), columns = i, j, k
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1, 1]),
    "LAS": np.diag([1.0, -1, 1]),
    "oblique": rotation(-15, 25, 40),
}


def voxels(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.float32).reshape(shape)


def write_itk(data_ijk: np.ndarray, direction: np.ndarray, path: Path, compress: bool = False) -> Path:
    """Write (I, J, K) voxels with spacing (0.7, 0.8, 2.0) and a fixed LPS origin."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data_ijk.transpose(2, 1, 0)))
    image.SetSpacing((0.7, 0.8, 2.0))
    image.SetOrigin((12.5, -30.25, 7.0))
    image.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(image, str(path), compress)
    return path


def expected_affine(direction: np.ndarray) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag([0.7, 0.8, 2.0])
    lps[:3, 3] = (12.5, -30.25, 7.0)
    return LPS_TO_RAS @ lps


@pytest.mark.parametrize("kind", list(DIRECTIONS))
@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_geometry_round_trip(tmp_path: Path, kind: str, suffix: str) -> None:
    path = write_itk(voxels(), DIRECTIONS[kind], tmp_path / f"s{suffix}", compress=suffix == ".mha")
    volume = read_sitk_image(path, max_voxels=CAP)
    np.testing.assert_allclose(volume.affine, expected_affine(DIRECTIONS[kind]), atol=1e-5)
    np.testing.assert_array_equal(volume.array[0], voxels())
    assert volume.array.dtype == np.float32 and volume.source.format == suffix[1:]
    if kind != "oblique":
        assert volume.orientation == kind
    # ITK's own index -> point mapping agrees with the affine (after LPS -> RAS).
    image = sitk.ReadImage(str(path))
    index = (4, 1, 6)
    point_lps = np.array(image.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose((volume.affine @ [*index, 1])[:3], point_lps * [-1, -1, 1], atol=1e-5)
    assert volume.array[0][index] == sitk.GetArrayFromImage(image)[index[::-1]]


@pytest.mark.parametrize("kind", ["RAS", "LAS", "LPS", "oblique"])
@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_world_coordinates_agree_with_nibabel(tmp_path: Path, kind: str, suffix: str) -> None:
    """nibabel writes a NIfTI; ITK's own NIfTI reader converts it; both reads must agree."""
    direction_ras = {"RAS": np.eye(3), "LAS": np.diag([-1.0, 1, 1]), "LPS": np.diag([-1.0, -1, 1]),
                     "oblique": rotation(10, -5, 30)}[kind]
    affine = np.eye(4)
    affine[:3, :3] = direction_ras @ np.diag([0.9, 1.1, 1.7])
    affine[:3, 3] = (-60.5, 22.0, 41.75)
    image = nib.Nifti1Image(voxels(), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nifti = tmp_path / "ref.nii"
    nib.save(image, nifti)
    converted = tmp_path / f"conv{suffix}"
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(converted))
    from_nifti = read_nifti(nifti, max_voxels=CAP)
    from_itk = read_sitk_image(converted, max_voxels=CAP)
    np.testing.assert_allclose(from_itk.affine, from_nifti.affine, atol=1e-4)  # qform quaternion is float32
    np.testing.assert_array_equal(from_itk.array, from_nifti.array)


def test_vector_image_is_channels_only_with_modalities(tmp_path: Path) -> None:
    data = voxels((*SHAPE, 2))  # (I, J, K, C)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0, 3)), isVector=True)
    path = tmp_path / "vec.nrrd"
    image.SetDirection(np.eye(3).ravel().tolist())
    sitk.WriteImage(image, str(path))
    with pytest.raises(InputError, match="holds 2 volumes.*give the modalities"):
        read_sitk_image(path, max_voxels=CAP)
    with pytest.raises(InputError, match=r"holds 2 channel\(s\)"):
        read_sitk_image(path, max_voxels=CAP, modalities=("T1",))
    volume = read_sitk_image(path, max_voxels=CAP, modalities=("T1", "T2"))
    assert volume.channel_names == ("T1", "T2")
    np.testing.assert_array_equal(volume.array[1], data[..., 1])


def test_labels_keep_their_integer_type(tmp_path: Path) -> None:
    path = write_itk(voxels().astype(np.uint16), np.eye(3), tmp_path / "l.nrrd")
    volume = read_sitk_image(path, max_voxels=CAP, dtype=None)
    assert volume.array.dtype == np.uint16


# ---- refused inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = write_itk(voxels(), np.eye(3), tmp_path / f"t{suffix}")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="cannot read the voxel data, the file may be truncated"):
        read_sitk_image(path, max_voxels=CAP)


def _nhdr(tmp_path: Path, sizes: str = "5 6 7", directions: str = "(0.7,0,0) (0,0.8,0) (0,0,2)",
          space: bool = True) -> Path:
    (tmp_path / "d.raw").write_bytes(voxels().tobytes())
    lines = ["NRRD0004", "type: float", "dimension: 3", f"sizes: {sizes}", "endian: little", "encoding: raw",
             "data file: d.raw"]
    if space:
        lines += ["space: left-posterior-superior", f"space directions: {directions}", "space origin: (0,0,0)"]
    path = tmp_path / "h.nhdr"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detached_header_reads(tmp_path: Path) -> None:
    volume = read_sitk_image(_nhdr(tmp_path), max_voxels=CAP)
    np.testing.assert_array_equal(volume.array[0], voxels().reshape(7, 6, 5).transpose(2, 1, 0))
    np.testing.assert_allclose(volume.spacing, (0.7, 0.8, 2.0))


def test_missing_data_file(tmp_path: Path) -> None:
    path = _nhdr(tmp_path)
    (tmp_path / "d.raw").unlink()
    with pytest.raises(InputError, match=r"couldn't open .*d\.raw.*check its data file"):
        read_sitk_image(path, max_voxels=CAP)


def test_header_claiming_terabytes_is_refused_before_reading(tmp_path: Path) -> None:
    path = _nhdr(tmp_path, sizes="40000 40000 40000")
    start = time.perf_counter()
    with pytest.raises(InputError, match="40000x40000x40000 grid"):
        read_sitk_image(path, max_voxels=CAP)
    assert time.perf_counter() - start < 1.0


def test_sheared_nrrd(tmp_path: Path) -> None:
    path = _nhdr(tmp_path, directions="(0.7,0,0) (0.3,0.8,0) (0,0,2)")
    with pytest.raises(InputError, match="direction is sheared"):
        read_sitk_image(path, max_voxels=CAP)


def test_nrrd_without_space_has_no_orientation(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'space' field"):
        read_sitk_image(_nhdr(tmp_path, space=False), max_voxels=CAP)


def test_nan_voxels(tmp_path: Path) -> None:
    data = voxels()
    data[2, 3, 4] = np.nan
    with pytest.raises(InputError, match=r"1 of 210 voxels are not finite \(1 NaN, 0 infinite\)"):
        read_sitk_image(write_itk(data, np.eye(3), tmp_path / "n.mha"), max_voxels=CAP)


def test_complex_voxels(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((3, 4, 5), dtype=np.complex64))
    sitk.WriteImage(image, str(tmp_path / "c.nrrd"))  # MetaImage would store it as a 2-vector
    with pytest.raises(InputError, match="complex voxels"):
        read_sitk_image(tmp_path / "c.nrrd", max_voxels=CAP)


def test_not_an_nrrd(tmp_path: Path) -> None:
    path = tmp_path / "junk.nrrd"
    path.write_text("hello")
    with pytest.raises(InputError, match="not a readable NRRD file"):
        read_sitk_image(path, max_voxels=CAP)
