"""Connected-component clean-up of label maps: keep each class's largest component, drop small ones.

Removed voxels become background (0), as in nnU-Net's postprocessing. Components are
26-connected (full 3D connectivity) so that a thin diagonal structure stays one piece.
Both steps use MONAI transforms (``KeepLargestConnectedComponent``, ``RemoveSmallObjects``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import KeepLargestConnectedComponent, RemoveSmallObjects

FULL_CONNECTIVITY = 3  # 26-neighbourhood in 3D


def _present(labels: np.ndarray) -> list[int]:
    """The label values present (bincount for small non-negative integers: no sort of the whole grid)."""
    if labels.dtype in (np.uint8, np.uint16) and labels.size:
        return [int(v) for v in np.flatnonzero(np.bincount(labels.reshape(-1)))]
    return [int(v) for v in np.unique(labels)]


def _classes(labels: np.ndarray, classes: Sequence[int] | None) -> list[int]:
    present = [v for v in _present(labels) if v != 0]
    return present if classes is None else [c for c in classes if c in present]


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
    if not chosen:
        return labels.copy()
    transform = KeepLargestConnectedComponent(
        applied_labels=chosen, is_onehot=False, independent=independent, connectivity=FULL_CONNECTIVITY
    )
    kept = transform(torch.as_tensor(labels[None].astype(np.int64)))
    return np.asarray(kept[0].cpu().numpy(), dtype=labels.dtype)


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
