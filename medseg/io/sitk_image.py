"""NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd) -> Volume through SimpleITK.

Axes and affine: the array is (C, I, J, K) with i, j, k = ITK's x, y, z index
(SimpleITK's numpy view is (z, y, x), so it is transposed). ITK's geometry is LPS+:
``p_LPS = origin + direction @ diag(spacing) @ [i, j, k]``; the affine is that matrix
converted to RAS+ with ``LPS_TO_RAS``. The header is read first
(``ReadImageInformation``) so the size cap applies before any pixel is allocated.
NIfTI is never read here (see ``medseg.io.nifti``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.data_file_refs import data_files
from medseg.io.volume_checks import (
    channel_names_for,
    check_finite,
    check_orthogonal,
    check_voxel_count,
)
from medseg.types import LPS_TO_RAS, SourceInfo, Volume

# Suffix -> (SimpleITK ImageIO, SourceInfo.format). The IO is named so ITK cannot guess another.
SITK_FORMATS = {
    ".nrrd": ("NrrdImageIO", "nrrd"),
    ".nhdr": ("NrrdImageIO", "nrrd"),
    ".mha": ("MetaImageIO", "mha"),
    ".mhd": ("MetaImageIO", "mha"),
}
_COMPLEX_TYPES = {sitk.sitkComplexFloat32, sitk.sitkComplexFloat64}


def read_sitk_image(
    path: str | Path,
    *,
    max_voxels: int,
    modalities: Sequence[str] = (),
    dtype: type[np.floating] | None = np.float32,
) -> Volume:
    """Read an NRRD or MetaImage file.

    Args:
        path: a .nrrd, .nhdr, .mha or .mhd file.
        max_voxels: refuse grids with more voxels per channel (checked from the header).
        modalities: channel names when the file holds several components (vector image)
            or a 4th axis; their count must match. Empty = a single 3D scan is expected.
        dtype: output dtype (float32 for scans); ``None`` keeps the stored type (labels).

    Returns:
        Volume with array (C, I, J, K) and affine voxel -> RAS+ mm.

    Raises:
        InputError: unreadable or truncated file, too many voxels, sheared or unknown
            orientation, complex voxels, NaN/Inf voxels, or channels without modalities.
    """
    path = Path(path)
    reader, kind, dimension, components, names, affine = _open_checked(path, max_voxels, modalities)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(
            path, f"cannot read the voxel data, the file may be truncated ({_itk_reason(error)})", _HINT
        ) from error
    # A view of ITK's buffer, copied once by astype (the view must not outlive ``image``).
    array = _to_channels_first(sitk.GetArrayViewFromImage(image), dimension, components)
    array = array.astype(dtype if dtype is not None else array.dtype.newbyteorder("="), copy=True)
    del image
    check_finite(path, array)
    header = {
        "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
        "components": components,
        "spacing": [float(s) for s in reader.GetSpacing()],
        "origin_lps": [float(s) for s in reader.GetOrigin()],
        "direction_lps": [float(s) for s in reader.GetDirection()],
    }
    source = SourceInfo(path=str(path), format=kind, description=path.name, header=header)
    return Volume(array=array, affine=affine, channel_names=names, source=source)


def sitk_grid(path: str | Path, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> tuple[tuple[int, int, int], np.ndarray]:
    """The (I, J, K) grid and affine of an NRRD/MetaImage file from its header only.

    Raises:
        InputError: as ``read_sitk_image`` for everything decided by the header.
    """
    reader, _, dimension, components, _, affine = _open_checked(Path(path), max_voxels, (), any_channels=True)
    spatial, _ = _grid(Path(path), [int(s) for s in reader.GetSize()], dimension, components)
    return spatial, affine


def _open_checked(
    path: Path, max_voxels: int, modalities: Sequence[str], any_channels: bool = False
) -> tuple[sitk.ImageFileReader, str, int, int, tuple[str, ...], np.ndarray]:
    """Read the header and run every check that needs no voxel data."""
    io_name, kind = SITK_FORMATS[_suffix(path)]
    data_files(path)  # a detached header's data file must stay in its folder (medseg.io.data_file_refs)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(io_name)
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(path, f"not a readable {kind.upper()} file ({_itk_reason(error)})", _HINT) from error
    size = [int(s) for s in reader.GetSize()]
    dimension = reader.GetDimension()
    components = int(reader.GetNumberOfComponents())
    if reader.GetPixelID() in _COMPLEX_TYPES:
        raise InputError(path, "complex voxels cannot be segmented", "save the magnitude image instead")
    if kind == "nrrd" and "NRRD_space" not in reader.GetMetaDataKeys():
        raise InputError(
            path,
            "the NRRD header has no 'space' field, so where the voxels lie in the patient is unknown",
            "re-export the scan with its orientation (e.g. from 3D Slicer), or use NIfTI/DICOM",
        )
    spatial, channels = _grid(path, size, dimension, components)
    check_voxel_count(path, spatial, max_voxels)
    names = () if any_channels else channel_names_for(path, channels, modalities)
    affine = _affine(path, reader, dimension)
    return reader, kind, dimension, components, names, affine


_HINT = "the file is damaged or incomplete (for .nhdr/.mhd, check its data file): export it again"


def _suffix(path: Path) -> str:
    """The lower-case suffix, which must be one of SITK_FORMATS."""
    suffix = path.suffix.lower()
    if suffix not in SITK_FORMATS:
        raise InputError(path, f"'{suffix}' is not an NRRD or MetaImage suffix", "use .nrrd, .nhdr, .mha or .mhd")
    return suffix


def _itk_reason(error: RuntimeError) -> str:
    """The useful last line of an ITK exception (the first lines are source locations)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception thrown", "/"))]
    return (useful[-1] if useful else lines[-1] if lines else "unknown error")[:300]


def _grid(path: Path, size: list[int], dimension: int, components: int) -> tuple[tuple[int, int, int], int]:
    """Spatial shape (I, J, K) and channel count: components, or a 4th axis of a scalar 4D image."""
    if dimension == 2:
        return (size[0], size[1], 1), components
    if dimension == 3:
        return (size[0], size[1], size[2]), components
    if dimension == 4 and components == 1:
        return (size[0], size[1], size[2]), size[3]
    raise InputError(
        path,
        f"a {dimension}D image with {components} component(s) per voxel cannot be read as one scan",
        "split it into 3D volumes (one per channel)",
    )


def _affine(path: Path, reader: sitk.ImageFileReader, dimension: int) -> np.ndarray:
    """Voxel -> RAS+ mm (4, 4) from ITK's LPS origin, spacing and direction."""
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    spacing = np.asarray(reader.GetSpacing(), dtype=np.float64)
    origin = np.asarray(reader.GetOrigin(), dtype=np.float64)
    if dimension == 4 and (np.abs(direction[:3, 3]).max() > 1e-6 or np.abs(direction[3, :3]).max() > 1e-6):
        raise InputError(path, "the 4th axis is mixed with the spatial axes", "split it into 3D volumes")
    matrix = np.eye(3)
    offset = np.zeros(3)
    spatial_dims = min(dimension, 3)
    matrix[:spatial_dims, :spatial_dims] = direction[:spatial_dims, :spatial_dims] * spacing[:spatial_dims]
    offset[:spatial_dims] = origin[:spatial_dims]
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = offset
    affine = LPS_TO_RAS @ lps
    check_orthogonal(path, affine, "direction")
    return affine


def _to_channels_first(array: np.ndarray, dimension: int, components: int) -> np.ndarray:
    """SimpleITK's numpy layout -> (C, I, J, K).

    SimpleITK gives (z, y, x) for 3D, (z, y, x, c) for vector images, (t, z, y, x) for 4D,
    (y, x) and (y, x, c) for 2D.
    """
    if dimension == 4:
        return array.transpose(0, 3, 2, 1)
    if dimension == 2:
        array = array[np.newaxis]  # (1, y, x[, c]) : a one-slice volume
    if components > 1:
        return array.transpose(3, 2, 1, 0)
    return array.transpose(2, 1, 0)[np.newaxis]
