"""Checks shared by the file readers: size caps, grid geometry, finite voxels, channel counts.

Each check raises ``InputError`` naming the file, the reason and a hint; none allocates
voxel data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.errors import InputError

# Largest |cos| allowed between two voxel axes (1e-4 ~ 0.006 degrees): float32 headers
# written by dcm2niix/ITK are orthogonal to ~1e-7, real shear is far larger.
SHEAR_TOLERANCE = 1e-4
# Grids are "the same" when every voxel-corner position agrees within this (mm) ...
GRID_TOLERANCE_MM = 1e-3
# ... and the axis directions (unit vectors) agree within this.
DIRECTION_TOLERANCE = 1e-4


def check_voxel_count(path: str | Path, shape: Sequence[int], max_voxels: int) -> int:
    """Refuse a grid with more voxels per channel than ``max_voxels``; returns the count.

    Args:
        path: the file, for the message.
        shape: the spatial shape (I, J, K) from the header.
        max_voxels: the cap (``DataConfig.max_voxels``).
    """
    count = math.prod(int(s) for s in shape)
    if any(int(s) < 1 for s in shape):
        raise InputError(path, f"the header gives an empty grid {tuple(shape)}", "the file is damaged")
    if count > max_voxels:
        raise InputError(
            path,
            f"the header claims a {'x'.join(str(s) for s in shape)} grid ({count:,} voxels per channel), "
            f"more than the limit of {max_voxels:,}",
            "if the scan is genuine, raise data.max_voxels; otherwise the header is damaged",
        )
    return count


def check_orthogonal(path: str | Path, affine: np.ndarray, what: str = "affine") -> None:
    """Refuse a voxel-to-world matrix whose axes are degenerate or not at right angles (shear).

    Args:
        path: the file, for the message.
        affine: shape (4, 4), voxel -> world.
        what: which matrix this is (``"sform"``, ``"direction"``), for the message.
    """
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    lengths = np.linalg.norm(columns, axis=0)
    if not np.all(np.isfinite(columns)) or np.any(lengths < 1e-6):
        raise InputError(
            path,
            f"the {what} has a zero-length or non-finite voxel axis (voxel sizes {lengths.round(6).tolist()})",
            "the geometry header is damaged: re-export the scan from its source",
        )
    unit = columns / lengths
    cosines = np.abs(unit.T @ unit - np.eye(3))
    worst = float(cosines.max())
    if worst > SHEAR_TOLERANCE:
        angle = math.degrees(math.asin(min(worst, 1.0)))
        raise InputError(
            path,
            f"the {what} is sheared: its voxel axes are {angle:.3f} degrees away from right angles",
            "resample the scan onto an orthogonal grid (e.g. with SimpleITK or ANTs); "
            "for a NIfTI whose sform is wrong, set sform_code to 0 so that the qform is used",
        )


def corner_positions(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World positions (8, 3) of the eight corner voxel centres of a grid."""
    corners = np.array(list(itertools.product(*[(0, int(s) - 1) for s in shape[:3]])), dtype=np.float64)
    homogeneous = np.c_[corners, np.ones(len(corners))]
    return (homogeneous @ np.asarray(affine, dtype=np.float64).T)[:, :3]


def max_corner_distance(first: np.ndarray, second: np.ndarray, shape: Sequence[int]) -> float:
    """Largest distance (mm) between where two affines put the same corner voxel of a grid."""
    difference = corner_positions(first, shape) - corner_positions(second, shape)
    return float(np.linalg.norm(difference, axis=1).max())


def grid_difference(
    first: np.ndarray, first_shape: Sequence[int], second: np.ndarray, second_shape: Sequence[int]
) -> str:
    """How two grids differ, in words; ``""`` when they are the same within tolerance."""
    if tuple(first_shape) != tuple(second_shape):
        return f"shape {tuple(first_shape)} vs {tuple(second_shape)}"
    distance = max_corner_distance(first, second, first_shape)
    first_dirs = np.asarray(first)[:3, :3] / np.linalg.norm(np.asarray(first)[:3, :3], axis=0)
    second_dirs = np.asarray(second)[:3, :3] / np.linalg.norm(np.asarray(second)[:3, :3], axis=0)
    direction = float(np.abs(first_dirs - second_dirs).max())
    if distance > GRID_TOLERANCE_MM or direction > DIRECTION_TOLERANCE:
        return (
            f"voxel positions differ by up to {distance:.4g} mm (axis directions by {direction:.2g})"
        )
    return ""


def check_finite(path: str | Path, array: np.ndarray) -> None:
    """Refuse voxels that are NaN or infinite (counted in the message)."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        nans = int(np.count_nonzero(np.isnan(array)))
        raise InputError(
            path,
            f"{bad:,} of {array.size:,} voxels are not finite ({nans:,} NaN, {bad - nans:,} infinite)",
            "fix the exporting tool, or replace them (e.g. numpy.nan_to_num) and save a copy",
        )


def channel_names_for(path: str | Path, count: int, modalities: Sequence[str]) -> tuple[str, ...]:
    """Names for ``count`` channels: the modalities when given (count must match), else ``("image",)``.

    Raises:
        InputError: several channels without modalities, or a count that does not match.
    """
    if modalities:
        if len(modalities) != count:
            raise InputError(
                path,
                f"the file holds {count} channel(s) (4D or multi-component) where {len(modalities)} "
                f"({', '.join(modalities)}) were expected",
                "check the modalities in dataset.json / data.modalities against the file; "
                "a label map must be a single 3D volume",
            )
        return tuple(str(m) for m in modalities)
    if count != 1:
        raise InputError(
            path,
            f"a single 3D scan was expected but the file holds {count} volumes (4D or multi-component)",
            "if the volumes are the channels (e.g. T1, T2, FLAIR), give the modalities "
            "(dataset.json 'modality' or data.modalities); otherwise split the file",
        )
    return ("image",)
