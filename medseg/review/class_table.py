"""Per-class facts shown in the review table: volume (mL), mean uncertainty, largest slice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.types import spacing_from_affine


@dataclass(frozen=True)
class ClassRow:
    """One row of the class table.

    Attributes:
        label: label value (1..N).
        name: class name.
        voxels: voxels with this label.
        volume_ml: voxels x voxel volume, in millilitres.
        mean_uncertainty: mean uncertainty (0..1) over the class's voxels; None without an uncertainty map
            or when the class is empty.
        largest_slice: index along ``axis`` of the slice holding most of the class; None when empty.
        flags: QC flags that name this class (or ``"empty"`` when it has no voxels).
    """

    label: int
    name: str
    voxels: int
    volume_ml: float
    mean_uncertainty: float | None
    largest_slice: int | None
    flags: tuple[str, ...]


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL (the product of the spacings in mm, / 1000)."""
    return float(np.prod(spacing_from_affine(affine))) / 1000.0


def largest_slice(mask: np.ndarray, axis: int = 0) -> int | None:
    """Index along ``axis`` of the slice of the boolean (D0, D1, D2) ``mask`` with most voxels; None if empty."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    counts = np.count_nonzero(mask, axis=other)
    return int(np.argmax(counts)) if counts.any() else None


def class_table(
    labels: np.ndarray,
    class_names: Sequence[str],
    affine: np.ndarray,
    *,
    uncertainty: np.ndarray | None = None,
    qc_flags: Sequence[str] = (),
    axis: int = 0,
) -> list[ClassRow]:
    """One row per class 1..N (background excluded), absent classes included.

    Args:
        labels: (D0, D1, D2) integer labels.
        class_names: names of labels 0..N (index = value); values above N get ``"label <v>"``.
        affine: (4, 4) voxel -> mm affine of ``labels`` (only the spacing is used).
        uncertainty: optional (D0, D1, D2) map in 0..1 on the same grid.
        qc_flags: the case's QC flags; a flag mentioning a class name is listed on its row.
        axis: the slicing axis for ``largest_slice`` (napari's display axis 0).

    Returns:
        Rows in label order.
    """
    labels = np.asarray(labels)
    if uncertainty is not None and np.shape(uncertainty) != labels.shape:
        raise ValueError(f"uncertainty shape {np.shape(uncertainty)} differs from the labels' {labels.shape}")
    voxel_ml = voxel_volume_ml(affine)
    present = np.unique(labels)
    top = max(len(class_names) - 1, int(present.max()) if present.size else 0)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=top + 1)
    sums = None
    if uncertainty is not None:
        sums = np.bincount(labels.ravel().astype(np.int64), weights=np.asarray(uncertainty, float).ravel(),
                           minlength=top + 1)
    rows = []
    for value in range(1, top + 1):
        name = class_names[value] if value < len(class_names) else f"label {value}"
        voxels = int(counts[value])
        flags = tuple(flag for flag in qc_flags if name.lower() in flag.lower())
        if voxels == 0:
            flags = (*flags, "empty")
        mean = float(sums[value] / voxels) if sums is not None and voxels else None
        rows.append(ClassRow(
            label=value, name=name, voxels=voxels, volume_ml=voxels * voxel_ml, mean_uncertainty=mean,
            largest_slice=largest_slice(labels == value, axis) if voxels else None, flags=flags,
        ))
    return rows
