"""The majority-class baseline: one label everywhere, the most frequent one (background).

A model is only worth its compute if it beats this; its scores sit beside the model's in
every report. With background as the majority the baseline scores Dice 0 and NSD 0 on
every present structure (1 on absent ones, see ``metrics``), HD95 NaN and a volume
difference of -100 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from medseg.evaluation.metrics import ClassScores, score_labels


def majority_class(truths: Iterable[np.ndarray]) -> int:
    """The label value with the most voxels over all reference label maps (ties: the smallest).

    Args:
        truths: (I, J, K) integer label maps (grids may differ).
    """
    counts = np.zeros(0, dtype=np.int64)
    for truth in truths:
        found = np.bincount(np.asarray(truth).ravel().astype(np.int64))
        if found.size > counts.size:
            counts = np.pad(counts, (0, found.size - counts.size))
        counts[: found.size] += found
    if counts.size == 0:
        raise ValueError("majority_class needs at least one non-empty label map")
    return int(np.argmax(counts))


def baseline_prediction(shape: Sequence[int], label: int = 0) -> np.ndarray:
    """(I, J, K) uint8/int32 label map holding ``label`` everywhere."""
    dtype = np.uint8 if 0 <= label <= 255 else np.int32
    return np.full(tuple(int(s) for s in shape), label, dtype=dtype)


def score_baseline(
    truth: np.ndarray,
    spacing: Sequence[float],
    classes: Sequence[int],
    tolerance_mm: float = 2.0,
    label: int = 0,
) -> dict[int, ClassScores]:
    """Score the constant prediction ``label`` against ``truth`` with the model's metrics.

    Args:
        truth: (I, J, K) reference labels.
        spacing: voxel size in mm along i, j, k.
        classes: the label values to score.
        tolerance_mm: the surface-Dice tolerance, mm.
        label: the constant label (``majority_class`` of the references).

    Returns:
        ``{label value: ClassScores}`` as ``metrics.score_labels``.
    """
    return score_labels(baseline_prediction(np.shape(truth), label), truth, spacing, classes, tolerance_mm)
