"""Skull-stripped scans: their zeros already say where the outside is, so the background's odds inside fall.

A brain-tissue network trained on whole heads and skull-stripped brains alike has learnt that the edge of
the brain is where tissue ends, whatever lies beyond. On a skull-stripped scan that costs tissue at the
brain's outer edge: the slim DeepMedic, whose normal pathway sees 34 mm, calls background 75 % of the tissue
2-4 mm inside the brain mask of a synthetic skull-stripped T1 and a third of the gray matter of a real one.
But a skull-stripped scan is zero outside the brain: its signal voxels are brain, except for the thin rim a
stripping tool leaves. So on such a scan the prior odds of background at a signal voxel are far lower than
in the network's training mix; ``lower_background_odds`` applies that prior shift (label-shift adaptation,
Saerens et al. 2002): the background's odds are multiplied by ``odds`` < 1, the other classes keep their
ratios and share the rest. Voxels without signal keep the network's answer.

Detection (``is_skull_stripped``): of the signal voxels (above ``FLOOR_FRACTION`` of the 99th percentile of the
positive intensities, as the intensity refinement counts them), fewer than ``STRIPPED_FAR_FRACTION`` lie
more than ``FAR_MM`` from the network's tissue. Measured on both shipped models: whole heads (real and
synthetic, any contrast) 0.14-0.81, skull-stripped brains (real moved, the sample, synthetic validation)
0.000-0.018.

Written here because MONAI's label-shift tools work on classifier outputs per image, not per voxel with a
scan-type condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.inference.intensity_refinement import FLOOR_FRACTION

FAR_MM = 8.0
STRIPPED_FAR_FRACTION = 0.05
# The distance map is computed on a grid strided to about this spacing (the 8 mm test needs no finer one).
DETECTION_SPACING_MM = 2.0


@dataclass(frozen=True)
class StrippedCheck:
    """What ``adapt_to_skull_stripped`` found.

    Attributes:
        skull_stripped: the scan was judged skull-stripped (and the background's odds were lowered).
        far_fraction: share of the signal voxels farther than ``FAR_MM`` from the network's tissue.
        odds: the factor applied to the background's odds (1 when not skull-stripped).
    """

    skull_stripped: bool
    far_fraction: float
    odds: float

    def to_dict(self) -> dict[str, object]:
        return {"skull_stripped": self.skull_stripped, "far_fraction": self.far_fraction, "odds": self.odds}


def signal_voxels(image: np.ndarray) -> np.ndarray:
    """(I, J, K) bool: intensity above ``FLOOR_FRACTION`` of the 99th percentile of the positive voxels."""
    positive = image[image > 0]
    if positive.size == 0:
        return np.zeros(image.shape, dtype=bool)
    return image > FLOOR_FRACTION * float(np.percentile(positive, 99))


def far_fraction(signal: np.ndarray, tissue: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Share of ``signal`` voxels more than ``FAR_MM`` from ``tissue`` (both (I, J, K) bool), on a strided grid."""
    stride = tuple(max(1, int(round(DETECTION_SPACING_MM / float(s)))) for s in spacing)
    view = tuple(slice(None, None, step) for step in stride)
    coarse_signal, coarse_tissue = signal[view], tissue[view]
    count = int(coarse_signal.sum())
    if count == 0:
        return 0.0
    if not coarse_tissue.any():
        return 1.0
    distance = ndimage.distance_transform_edt(~coarse_tissue, sampling=[float(s) * k for s, k in zip(spacing, stride)])
    return float((coarse_signal & (distance > FAR_MM)).sum() / count)


def lower_background_odds(probabilities: np.ndarray, where: np.ndarray, odds: float) -> None:
    """Multiply class 0's odds by ``odds`` at ``where`` in (C, I, J, K) ``probabilities``, in place.

    p0' = k p0 / (k p0 + 1 - p0); the other classes are scaled by (1 - p0') / (1 - p0), so each voxel still sums
    to 1 and the tissue classes keep their ratios.
    """
    background = probabilities[0][where]
    lowered = odds * background / (odds * background + (1.0 - background))
    scale = (1.0 - lowered) / np.maximum(1.0 - background, 1e-12)
    for index in range(1, probabilities.shape[0]):
        probabilities[index][where] *= scale
    probabilities[0][where] = lowered


def adapt_to_skull_stripped(
    image: np.ndarray, probabilities: np.ndarray, spacing: tuple[float, ...], odds: float
) -> StrippedCheck:
    """Lower the background's odds at the signal voxels of ``image`` when it is skull-stripped (module docstring).

    Args:
        image: (I, J, K) scan intensities on the probabilities' grid.
        probabilities: (C, I, J, K) float32, class 0 the background; changed in place when skull-stripped.
        spacing: voxel size (mm).
        odds: the factor in (0, 1] on the background's odds.
    """
    if not 0.0 < odds <= 1.0:
        raise ValueError(f"stripped_background_odds must be in (0, 1], got {odds}")
    signal = signal_voxels(image)
    fraction = far_fraction(signal, probabilities[0] < 0.5, spacing)
    stripped = bool(signal.any()) and fraction < STRIPPED_FAR_FRACTION
    if stripped and odds < 1.0:
        lower_background_odds(probabilities, signal, odds)
    return StrippedCheck(stripped, fraction, odds if stripped else 1.0)
