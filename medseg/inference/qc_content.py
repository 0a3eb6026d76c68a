"""QC measures taken from the prediction itself, for flags that do not need training ranges.

* ``outside_main_structure_ml``: predicted foreground outside the largest connected
  structure (e.g. tissue labelled on the scalp of a whole head when the model should find
  one brain).
* ``minimum_class_separation``: how well the input's intensities separate the predicted
  classes (d' of each pair of foreground classes); a contrast the classes do not show in is
  a contrast the model is guessing on.
* ``pass_disagreement``: the share of the predicted structure's voxels whose class changes between the
  mirrored test-time-augmentation passes (the model contradicting itself). Only the structure the
  prediction keeps counts: on a real head the raw passes disagree about stray voxels on the scalp that
  the clean-up removes (measured on two real T1 heads under the brain UNet's TTA: 19-23 % of the passes'
  foreground, 15-20 % of the kept brain, against 10-13 % on the same brains skull-stripped).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

from medseg.inference.postprocess import connected_components

MAX_SEPARATION_SAMPLES = 200_000  # voxels per class used for the intensity statistics (strided)


def outside_main_structure_ml(labels: np.ndarray, spacing: Sequence[float]) -> float:
    """mL of foreground (labels > 0, (I, J, K)) outside the largest 26-connected foreground component."""
    foreground = np.asarray(labels) > 0
    if not foreground.any():
        return 0.0
    _, sizes = connected_components(foreground)
    outside = int(sizes.sum() - sizes.max())
    return outside * float(np.prod(spacing)) / 1000.0


def minimum_class_separation(
    image: np.ndarray, labels: np.ndarray, class_names: Sequence[str], min_voxels: int = 50
) -> tuple[float, str]:
    """The smallest d' = |mean_a - mean_b| / sqrt((var_a + var_b) / 2) over pairs of predicted foreground classes.

    Args:
        image: (I, J, K) intensities of the first channel, on the labels' grid.
        labels: (I, J, K) predicted labels.
        class_names: names by label value (background first).
        min_voxels: classes with fewer predicted voxels are left out.

    Returns:
        ``(d_prime, "class a vs class b")``; ``(nan, "")`` with fewer than two classes present.
    """
    statistics = {}
    flat_labels = np.asarray(labels).ravel()
    flat_image = np.asarray(image).ravel()  # float64 only for the sampled values, not a copy of the scan
    for value in range(1, len(class_names)):
        values = flat_image[flat_labels == value]
        if values.size < min_voxels:
            continue
        values = values[:: max(values.size // MAX_SEPARATION_SAMPLES, 1)].astype(np.float64)
        statistics[class_names[value]] = (float(values.mean()), float(values.var()))
    best, pair = math.inf, ""
    for (name_a, (mean_a, var_a)), (name_b, (mean_b, var_b)) in itertools.combinations(statistics.items(), 2):
        spread = math.sqrt(max((var_a + var_b) / 2.0, 1e-12))
        separation = abs(mean_a - mean_b) / spread
        if separation < best:
            best, pair = separation, f"{name_a} vs {name_b}"
    return (best, pair) if pair else (math.nan, "")


def pass_disagreement(pass_labels: Sequence[torch.Tensor], final_labels: torch.Tensor,
                      structure: np.ndarray | None = None) -> float:
    """Share of the predicted structure's voxels whose class differs in any pass from the averaged one.

    Args:
        pass_labels: argmax (I, J, K) of each TTA pass.
        final_labels: argmax (I, J, K) of the averaged probabilities.
        structure: bool (I, J, K), the voxels the prediction keeps (its clean-up applied to
            ``final_labels``); None: ``final_labels > 0``.
    """
    if len(pass_labels) < 2:
        return math.nan
    kept = torch.as_tensor(np.asarray(structure, dtype=bool)) if structure is not None else final_labels > 0
    differs = torch.zeros_like(kept)
    for labels in pass_labels:
        differs |= labels != final_labels
    total = int(kept.sum())
    return float((differs & kept).sum()) / total if total else 0.0
