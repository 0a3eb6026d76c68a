"""Connected-component clean-up of label maps: keep each class's largest component, drop small ones.

Removed voxels become background (0), as in nnU-Net's postprocessing. Components are
26-connected (full 3D connectivity) so that a thin diagonal structure stays one piece.

The labelling is ``cc3d`` (connected-components-3d, seung-lab), not MONAI's
``KeepLargestConnectedComponent`` / ``RemoveSmallObjects``: the first gives the same answer
(tested) but goes through an int64 copy and scikit-image's labelling, 12x slower on a 1 mm head
(0.23 s vs 0.02 s on 2 cores), the largest part of the per-voxel finish; the second rounds the
minimum size up to whole voxels and then also drops components of exactly that size, where the
rule here is strictly smaller in mL (tested against scipy's labelling).
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np

FULL_CONNECTIVITY = 26  # 26-neighbourhood in 3D
FEW_CLASSES = 16  # label maps (components) with values up to this are counted per value, not bincounted


def _present(labels: np.ndarray) -> list[int]:
    """The label values present, without a sort (or an int64 copy) of the whole grid for a few classes."""
    if labels.dtype in (np.uint8, np.uint16) and labels.size:
        top = int(labels.max())
        if top <= FEW_CLASSES:  # one comparison pass per value (bincount first copies the grid to int64)
            return [v for v in range(top + 1) if v == top or np.any(labels == v)]
        return [int(v) for v in np.flatnonzero(np.bincount(labels.reshape(-1)))]
    return [int(v) for v in np.unique(labels)]


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """26-connected components of a boolean mask.

    Args:
        mask: (I, J, K) bool.

    Returns:
        (I, J, K) component ids (0 outside the mask, 1.. in raster order of first voxel) and the
        voxel count of each id (index 0 counted as 0).
    """
    components, count = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool),
                                                  connectivity=FULL_CONNECTIVITY, return_N=True)
    if count <= FEW_CLASSES:  # a pass per component beats bincount's int64 copy of the grid
        sizes = np.array([0] + [np.count_nonzero(components == i) for i in range(1, count + 1)], dtype=np.int64)
    else:
        sizes = np.bincount(components.reshape(-1), minlength=count + 1)
        sizes[0] = 0
    return components, sizes


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(I, J, K) bool: the largest 26-connected component of a boolean mask (the first in raster order on ties)."""
    components, sizes = connected_components(mask)
    if len(sizes) <= 2:  # empty, or one component
        return np.asarray(mask, dtype=bool).copy()
    return components == int(np.argmax(sizes))


def _mask_of(labels: np.ndarray, chosen: list[int], present: list[int]) -> np.ndarray:
    """(I, J, K) bool: voxels whose label is one of ``chosen`` (all foreground without an isin pass)."""
    if chosen == [v for v in present if v != 0]:
        return labels != 0
    return np.isin(labels, chosen)


def keep_largest_foreground(labels: np.ndarray) -> np.ndarray:
    """Keep only the largest connected component of all foreground classes taken together.

    Args:
        labels: (I, J, K) integer label map.

    Returns:
        (I, J, K) label map of the same dtype: classes kept as they were inside the component, 0 elsewhere.
    """
    return keep_largest_component(labels, independent=False)


def keep_largest_component(
    labels: np.ndarray, classes: Sequence[int] | None = None, *, independent: bool = True
) -> np.ndarray:
    """Keep only the largest connected component of each class (or of the classes taken together).

    Ties between equally large components keep the first in raster order (as MONAI does).

    Args:
        labels: (I, J, K) integer label map.
        classes: label values to clean (default: every foreground class present).
        independent: one component per class; False: one component of all ``classes`` together.

    Returns:
        (I, J, K) label map of the same dtype; removed voxels are 0.
    """
    labels = np.asarray(labels)
    result = labels.copy()
    present = _present(labels)
    chosen = [v for v in present if v != 0] if classes is None else [c for c in classes if c in present and c != 0]
    groups = [[value] for value in chosen] if independent else [chosen] if chosen else []
    for group in groups:
        mask = _mask_of(labels, group, present)
        mask &= ~largest_component(mask)  # the voxels to remove
        result[mask] = 0
    return result


def remove_small_components(
    labels: np.ndarray, spacing: Sequence[float], min_ml: float, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Set connected components smaller than ``min_ml`` millilitres to background, per class.

    Args:
        labels: (I, J, K) integer label map.
        spacing: voxel size in mm along i, j, k.
        min_ml: components with a smaller volume (mL = 1000 mm^3) are removed (strictly smaller,
            as scikit-image's ``remove_small_objects``); <= 0 = no-op.
        classes: label values to clean (default: every foreground class present).

    Returns:
        (I, J, K) label map of the same dtype.
    """
    labels = np.asarray(labels)
    result = labels.copy()
    if min_ml <= 0:
        return result
    voxel_mm3 = float(np.prod([float(s) for s in spacing]))
    present = [v for v in _present(labels) if v != 0]
    for value in present if classes is None else [c for c in classes if c in present]:
        mask = labels == value
        components, sizes = connected_components(mask)
        small = sizes * voxel_mm3 < min_ml * 1000.0
        small[0] = False
        if small.any():
            result[small[components]] = 0
    return result


def class_volumes_ml(labels: np.ndarray, spacing: Sequence[float], class_names: Sequence[str]) -> dict[str, float]:
    """Volume in mL of each foreground class (name -> mL), zero for absent classes."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    labels = np.asarray(labels)
    if len(class_names) <= FEW_CLASSES:  # a comparison pass per class: no int64 copy at all
        return {name: float(np.count_nonzero(labels == index)) * voxel_ml
                for index, name in enumerate(class_names) if index > 0}
    flat = labels.reshape(-1)
    counts = np.zeros(len(class_names), dtype=np.int64)
    for start in range(0, flat.size, 1 << 22):  # chunks: no int64 copy of a whole CT
        chunk = np.bincount(flat[start : start + (1 << 22)].astype(np.int64), minlength=len(class_names))
        counts[: len(chunk)] += chunk[: len(class_names)]
    return {name: float(counts[index]) * voxel_ml for index, name in enumerate(class_names) if index > 0}
