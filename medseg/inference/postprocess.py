"""Connected-component clean-up of label maps: keep each class's largest component, drop small ones.

Removed voxels become background (0), as in nnU-Net's postprocessing. Components are
26-connected (full 3D connectivity) so that a thin diagonal structure stays one piece.

Largest component: ``scipy.ndimage.label`` on the bounding box of the cleaned classes only (a
brain fills a fraction of a head scan's grid), with the result of MONAI's
``KeepLargestConnectedComponent`` (which labels the whole grid with scikit-image into int64):
the same components; among equally large ones the last in raster order is kept, as MONAI's
reversed argsort does for small label counts (tested against MONAI). Small components: MONAI's
``RemoveSmallObjects``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import RemoveSmallObjects
from scipy import ndimage

FULL_CONNECTIVITY = 3  # 26-neighbourhood in 3D
FULL_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def _present(labels: np.ndarray) -> list[int]:
    """The label values present (bincount for small non-negative integers: no sort of the whole grid)."""
    if labels.dtype in (np.uint8, np.uint16) and labels.size:
        return [int(v) for v in np.flatnonzero(np.bincount(labels.reshape(-1)))]
    return [int(v) for v in np.unique(labels)]


def _classes(labels: np.ndarray, classes: Sequence[int] | None) -> list[int]:
    present = [v for v in _present(labels) if v != 0]
    return present if classes is None else [c for c in classes if c in present]


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel of a 3D mask, or None when there is none."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if not hits.size:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def largest_component_mask(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D boolean mask (last in raster order among equals).

    Args:
        mask: (I, J, K) bool.

    Returns:
        (I, J, K) bool, False everywhere when ``mask`` is empty.
    """
    kept = np.zeros(mask.shape, dtype=bool)
    box = _bounding_box(mask)
    if box is None:
        return kept
    components, count = ndimage.label(mask[box], structure=FULL_STRUCTURE)
    if count <= 1:
        kept[box] = mask[box]
        return kept
    sizes = np.bincount(components.reshape(-1))
    sizes[0] = 0
    largest = len(sizes) - 1 - int(np.argmax(sizes[::-1]))  # the last of equal sizes, as MONAI
    kept[box] = components == largest
    return kept


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

    Args:
        labels: (I, J, K) integer label map.
        classes: label values to clean (default: every foreground class present).
        independent: one component per class; False: one component of all ``classes`` together.

    Returns:
        (I, J, K) label map of the same dtype; removed voxels are 0.
    """
    labels = np.asarray(labels)
    chosen = _classes(labels, classes)
    result = labels.copy()
    if not chosen:
        return result
    every = chosen == [v for v in _present(labels) if v != 0]
    groups = [[value] for value in chosen] if independent else [chosen]
    for group in groups:
        if len(group) == 1:
            mask = labels == group[0]
        else:
            mask = labels != 0 if every else np.isin(labels, group)
        result[mask & ~largest_component_mask(mask)] = 0
    return result


def remove_small_components(
    labels: np.ndarray, spacing: Sequence[float], min_ml: float, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Set connected components smaller than ``min_ml`` millilitres to background, per class.

    Args:
        labels: (I, J, K) integer label map.
        spacing: voxel size in mm along i, j, k.
        min_ml: components with a smaller volume (mL = 1000 mm^3) are removed; <= 0 = no-op.
        classes: label values to clean (default: every foreground class present).

    Returns:
        (I, J, K) label map of the same dtype.
    """
    labels = np.asarray(labels)
    result = labels.copy()
    if min_ml <= 0:
        return result
    transform = RemoveSmallObjects(
        min_size=min_ml * 1000.0, connectivity=FULL_CONNECTIVITY, by_measure=True,
        pixdim=[float(s) for s in spacing],
    )
    for value in _classes(labels, classes):
        mask = labels == value
        with warnings.catch_warnings():
            # MONAI 1.6 still passes skimage's deprecated `min_size` (strictly-smaller rule, which we want).
            warnings.simplefilter("ignore", FutureWarning)
            kept = np.asarray(transform(torch.as_tensor(mask[None])).cpu().numpy()[0], dtype=bool)
        result[mask & ~kept] = 0
    return result


def class_volumes_ml(labels: np.ndarray, spacing: Sequence[float], class_names: Sequence[str]) -> dict[str, float]:
    """Volume in mL of each foreground class (name -> mL), zero for absent classes."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    flat = np.asarray(labels).reshape(-1)
    counts = np.zeros(len(class_names), dtype=np.int64)
    for start in range(0, flat.size, 1 << 22):  # chunks: no int64 copy of a whole CT
        chunk = np.bincount(flat[start : start + (1 << 22)].astype(np.int64), minlength=len(class_names))
        counts[: len(chunk)] += chunk[: len(class_names)]
    return {name: float(counts[index]) * voxel_ml for index, name in enumerate(class_names) if index > 0}
