"""NIfTI-1 and NIfTI-2 (.nii, .nii.gz) -> Volume through nibabel, checked before allocating.

Axes and affine: the array is (C, I, J, K) in the file's voxel order (no reorientation);
``affine @ [i, j, k, 1]`` is RAS+ mm, as nibabel gives it.

qform/sform policy (the same as nibabel and FSL; ITK, and so 3D Slicer and ITK-SNAP,
prefers the qform instead): the sform is used when ``sform_code > 0``, else the qform
when ``qform_code > 0``. Both codes zero means no reliable geometry: refused, because
nibabel would fall back to a pixdim-only affine that places the scan arbitrarily.
When both are set and put some voxel corner more than 1e-3 mm apart, a warning names
the file and says the sform was used. The choice, both matrices and their codes are
kept in ``SourceInfo.header`` so that ``write_labels`` can write the same header
geometry back (a label file then overlays its scan in every viewer, whatever its policy).

SimpleITK is never used for NIfTI: it zero-fills a truncated .nii.gz without an error.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.volume_checks import (
    GRID_TOLERANCE_MM,
    channel_names_for,
    check_finite,
    check_orthogonal,
    check_voxel_count,
    max_corner_distance,
)
from medseg.types import SourceInfo, Volume

logger = logging.getLogger(__name__)

# zlib's deflate cannot compress better than 1032:1, so a .nii.gz of N bytes holds
# at most ~1032 * N bytes; a header claiming more is damaged (checked without reading).
DEFLATE_MAX_RATIO = 1032
# Spatial units -> factor to millimetres (unknown is taken as mm, as every tool does).
_UNIT_TO_MM = {"mm": 1.0, "unknown": 1.0, "meter": 1000.0, "micron": 0.001}
# What can go wrong reading a damaged file (header or data).
_READ_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)


def read_nifti(
    path: str | Path,
    *,
    max_voxels: int,
    modalities: Sequence[str] = (),
    dtype: type[np.floating] | None = np.float32,
) -> Volume:
    """Read a NIfTI-1/NIfTI-2 file (.nii or .nii.gz).

    Args:
        path: the file.
        max_voxels: refuse grids with more voxels per channel (checked from the header).
        modalities: channel names when the file's 4th axis holds the channels (e.g.
            a Decathlon 4D scan); their count must match. Empty = a 3D scan is expected.
        dtype: output dtype (float32 for scans); ``None`` keeps the stored values
            (native byte order; float when the header scales them), as labels need.

    Returns:
        Volume with array (C, I, J, K) and affine voxel -> RAS+ mm.

    Raises:
        InputError: unreadable, truncated, too large, sheared, without geometry, with
            NaN/Inf voxels, or 4D without matching modalities.
    """
    path = Path(path)
    image, spatial, names, affine, facts = _open_checked(path, max_voxels, modalities)
    data = _read_voxels(path, image, dtype)
    check_finite(path, data)
    array = np.moveaxis(data.reshape(*spatial, len(names)), -1, 0)  # reshapes add/drop length-1 axes: views
    source = SourceInfo(path=str(path), format="nifti", description=path.name, header=facts)
    return Volume(array=array, affine=affine, channel_names=names, source=source)


def nifti_grid(path: str | Path, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> tuple[tuple[int, int, int], np.ndarray]:
    """The (I, J, K) grid and affine of a NIfTI file from its header only (every header check applies).

    Raises:
        InputError: as ``read_nifti`` for everything decided by the header and the file size.
    """
    _, spatial, _, affine, _ = _open_checked(Path(path), max_voxels, (), any_channels=True)
    return spatial, affine


def _open_checked(
    path: Path, max_voxels: int, modalities: Sequence[str], any_channels: bool = False
) -> tuple[nib.Nifti1Image, tuple[int, int, int], tuple[str, ...], np.ndarray, dict]:
    """Open the file lazily and run every check that needs no voxel data."""
    try:
        image = nib.load(path, mmap=False)
    except _READ_ERRORS as error:
        raise InputError(path, f"not a readable NIfTI file ({error})", _damaged_hint(path)) from error
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise InputError(
            path,
            f"a {type(image).__name__}, not a NIfTI volume",
            "give a NIfTI-1/NIfTI-2 volume (.nii or .nii.gz)",
        )
    header = image.header
    spatial, channels = _grid_shape(path, header.get_data_shape())
    check_voxel_count(path, spatial, max_voxels)
    names = () if any_channels else channel_names_for(path, channels, modalities)
    stored = np.dtype(header.get_data_dtype())
    if stored.fields is not None or stored.kind not in "iuf":
        raise InputError(
            path,
            f"voxels of type {stored} (complex or RGB) cannot be segmented",
            "convert the scan to a scalar type (one channel per component)",
        )
    _check_file_holds(path, image.dataobj.offset + math.prod(spatial) * channels * stored.itemsize)
    affine, facts = _choose_affine(path, header, spatial)
    return image, spatial, names, affine, facts


def _grid_shape(path: Path, shape: Sequence[int]) -> tuple[tuple[int, int, int], int]:
    """Spatial shape (I, J, K) and channel count from a NIfTI data shape.

    (I, J) is one slice; (I, J, K, C) holds C channels; (I, J, K, 1, C) is NIfTI's
    vector layout (dim 5). Trailing length-1 axes are dropped.
    """
    dims = [int(s) for s in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 5 and dims[3] == 1:
        dims = dims[:3] + dims[4:]
    if len(dims) > 4:
        raise InputError(
            path,
            f"a {len(dims)}D array {tuple(dims)} cannot be read as one scan",
            "split it into 3D volumes (one per channel)",
        )
    dims += [1] * (3 - len(dims))
    channels = dims[3] if len(dims) == 4 else 1
    return (dims[0], dims[1], dims[2]), channels


def _check_file_holds(path: Path, needed: int) -> None:
    """Refuse a file too short for the voxels its header announces (without reading them)."""
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        # The gzip trailer's ISIZE is only the last member's length mod 2**32, so it cannot
        # bound multi-member (bgzip) files; deflate's ratio limit is a bound that always holds.
        # A gz truncated inside the bound is caught while reading (EOFError or short data).
        if needed > size * DEFLATE_MAX_RATIO:
            raise InputError(
                path,
                f"the header announces {needed:,} bytes of data but a {size:,}-byte gzip file "
                f"can hold at most {size * DEFLATE_MAX_RATIO:,}",
                _damaged_hint(path),
            )
    elif size < needed:
        raise InputError(
            path,
            f"the file is truncated: {size:,} bytes where the header needs {needed:,}",
            _damaged_hint(path),
        )


def _choose_affine(path: Path, header: Any, spatial: tuple[int, int, int]) -> tuple[np.ndarray, dict]:
    """The voxel -> RAS+ mm affine by the module's qform/sform policy, and the facts kept for writing."""
    qform_code = int(header["qform_code"])
    sform_code = int(header["sform_code"])
    if qform_code == 0 and sform_code == 0:
        raise InputError(
            path,
            "both qform_code and sform_code are 0: the header says nothing reliable about "
            "where the voxels are in the patient",
            "re-convert the scan from DICOM (e.g. with dcm2niix), or copy the geometry of the "
            "scan it was derived from with nibabel (set_qform/set_sform)",
        )
    qform = np.asarray(header.get_qform(), dtype=np.float64)
    sform = np.asarray(header.get_sform(), dtype=np.float64)
    used = "sform" if sform_code > 0 else "qform"
    affine = sform if used == "sform" else qform
    check_orthogonal(path, affine, used)
    disagreement = None
    if qform_code > 0 and sform_code > 0:
        disagreement = max_corner_distance(qform, sform, spatial)
        if disagreement > GRID_TOLERANCE_MM:
            logger.warning(
                "%s: qform and sform disagree by up to %.4g mm; using the sform (as nibabel and FSL "
                "do; ITK-based viewers such as 3D Slicer show the qform)",
                path,
                disagreement,
            )
    space_unit, time_unit = header.get_xyzt_units()
    scale = _UNIT_TO_MM.get(space_unit, 1.0)
    affine = affine.copy()
    affine[:3, :] *= scale
    facts = {
        "nifti_version": 2 if isinstance(header, nib.Nifti2Header) else 1,
        "qform_code": qform_code,
        "sform_code": sform_code,
        "qform": qform.tolist(),
        "sform": sform.tolist(),
        "affine_source": used,
        "qform_sform_max_diff_mm": disagreement,
        "space_unit": space_unit,
        "time_unit": time_unit,
        "data_dtype": str(np.dtype(header.get_data_dtype())),
    }
    return affine, facts


def _read_voxels(path: Path, image: nib.Nifti1Image, dtype: type[np.floating] | None) -> np.ndarray:
    """All voxels (scaled by scl_slope/scl_inter), in native byte order."""
    try:
        if dtype is not None:
            data = image.get_fdata(dtype=dtype)
        else:
            data = np.asanyarray(image.dataobj)
    except _READ_ERRORS as error:
        # nibabel raises OSError for short data and EOFError for a cut gzip stream.
        reason = " ".join(str(error).split())
        raise InputError(path, f"cannot read the voxel data ({reason})", _damaged_hint(path)) from error
    data = np.asarray(data)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return data


def _damaged_hint(path: Path) -> str:
    """What to do about a damaged file."""
    if not os.access(path, os.R_OK):
        return "check that the file exists and is readable"
    return "the file is damaged or incompletely copied: copy or export it again"
