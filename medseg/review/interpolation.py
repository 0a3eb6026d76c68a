"""Filling the slices between edited slices: shape-based interpolation of one class.

A reader corrects a structure on a few slices (say 10 and 16) and asks for the slices in
between. For each pair of consecutive edited slices ``a < b`` along the slicing axis, each
slice's class mask becomes a signed distance map (negative inside, in pixels, or in mm with
``sampling``), the maps are blended linearly (``(1 - t) * d_a + t * d_b`` at ``t = (s - a) /
(b - a)``) and the zero level set is the interpolated outline (Raya & Udupa 1990; what ITK-SNAP
and 3D Slicer's "fill between slices" do). Inside it the class is painted over whatever was
there; outside it, voxels of the class become background; other classes stay. A slice counts
as edited when its class mask differs from the model's (``original``). An empty slice (the
class erased) takes the other slice's deepest inside distance everywhere, so the structure
shrinks linearly to nothing towards it.

The result is a list of changed voxels (indices and new values), so the caller can apply it
through napari's ``Labels.data_setitem`` and one undo takes it back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def edited_slices(labels: np.ndarray, original: np.ndarray, label: int, axis: int = 0) -> list[int]:
    """Indices along ``axis`` of the slices whose ``label`` mask differs between ``labels`` and ``original``."""
    differ = (np.asarray(labels) == label) != (np.asarray(original) == label)
    other = tuple(a for a in range(differ.ndim) if a != axis)
    return [int(i) for i in np.flatnonzero(differ.any(axis=other))]


def signed_distance(mask: np.ndarray, sampling: Sequence[float] | None = None) -> np.ndarray:
    """Signed distance to a 2D mask's outline: negative inside, positive outside (pixels or mm)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, np.inf)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling) if not mask.all() else np.full(mask.shape, 1e6)
    return outside - inside


def interpolation_changes(
    labels: np.ndarray, original: np.ndarray, label: int, axis: int = 0,
    sampling: Sequence[float] | None = None,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, list[int]]:
    """The voxels to change to fill the gaps between edited slices of ``label``.

    Args:
        labels: (D0, D1, D2) the labels as edited.
        original: (D0, D1, D2) the model's labels (to tell which slices were edited).
        label: the class value to interpolate.
        axis: the slicing axis (0: the slices of napari's 2D view of a display-ordered array).
        sampling: in-plane pixel size (two values) for distances in mm.

    Returns:
        (indices, values, filled): a fancy index tuple and the new values of the voxels that
        change, and the slice numbers that were filled.
    """
    labels = np.asarray(labels)
    edited = edited_slices(labels, original, label, axis)
    moved = np.moveaxis(labels, axis, 0)
    changed_index: list[np.ndarray] = []
    changed_value: list[np.ndarray] = []
    filled: list[int] = []
    for a, b in zip(edited, edited[1:]):
        if b - a < 2:
            continue
        d_a, d_b = _towards_empty(signed_distance(moved[a] == label, sampling),
                                  signed_distance(moved[b] == label, sampling))
        for s in range(a + 1, b):
            t = (s - a) / (b - a)
            inside = (1 - t) * d_a + t * d_b <= 0
            current = moved[s]
            new = np.where(inside, label, np.where(current == label, 0, current)).astype(labels.dtype)
            where = np.argwhere(new != current)
            if where.size:
                full = np.insert(where, 0, s, axis=1)  # (n, 3) in the moved order
                changed_index.append(full)
                changed_value.append(new[new != current])
            filled.append(s)
    if not changed_index:
        empty = np.zeros(0, dtype=np.intp)
        return (empty,) * labels.ndim, np.zeros(0, dtype=labels.dtype), filled
    points = np.concatenate(changed_index)
    indices = tuple(points[:, _moved_column(dim, axis)] for dim in range(labels.ndim))
    return indices, np.concatenate(changed_value), filled


def _towards_empty(d_a: np.ndarray, d_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An empty slice's map (inf) becomes the other's deepest inside distance, so the shape shrinks
    linearly to nothing at the empty slice (two empty slices: nothing in between)."""
    if np.isinf(d_a).all() and np.isfinite(d_b).any():
        d_a = np.full(d_a.shape, -float(d_b.min()) + 1e-6)
    elif np.isinf(d_b).all() and np.isfinite(d_a).any():
        d_b = np.full(d_b.shape, -float(d_a.min()) + 1e-6)
    return d_a, d_b


def _moved_column(dim: int, axis: int) -> int:
    """Column of original dimension ``dim`` in coordinates of ``np.moveaxis(array, axis, 0)``."""
    if dim == axis:
        return 0
    return dim + 1 if dim < axis else dim
