"""Skull-stripped or whole head: the background's prior odds set for the kind of scan.

A brain-tissue network trained on whole heads and skull-stripped brains alike has learnt that the edge of
the brain is where tissue ends, whatever lies beyond. On a skull-stripped scan that costs tissue at the
brain's outer edge: the slim DeepMedic, whose normal pathway sees 34 mm, calls background 75 % of the tissue
2-4 mm inside the brain mask of a synthetic skull-stripped T1 and a third of the gray matter of a real one.
But a skull-stripped scan is zero outside the brain: its signal voxels are brain, except for the thin rim a
stripping tool leaves. So on such a scan the prior odds of background at a signal voxel are far lower than
in the network's training mix; ``scale_background_odds`` applies that prior shift (label-shift adaptation,
Saerens et al. 2002): the background's odds are multiplied by ``odds`` < 1, the other classes keep their
ratios and share the rest. Voxels without signal keep the network's answer.

On a scan with the skull on, ``raise_head_background_odds`` multiplies the background's odds everywhere by a
card's factor >= 1 (``postprocess.head_background_odds``): the decision between brain and not-brain then
weighs a voxel of tissue labelled outside the brain (on the dura, the scalp, a muscle: the error a reader sees
first, and the one the outline of synthetic training heads least prepares a network for) above a voxel of
brain missed at its edge. Only uncertain voxels move (a factor k turns background where P(background) lies
between 1/(1+k) and 1/2), and the tissue classes keep their ratios.

Detection (in ``adapt_to_skull_stripped``, on a grid strided to about 4 mm, tissue counted if any voxel of a
block is tissue): of the signal voxels (above ``FLOOR_FRACTION`` of the 99th percentile of the positive
intensities, as the intensity refinement counts them), fewer than ``STRIPPED_FAR_FRACTION`` lie more than
``FAR_MM`` from the network's tissue. Measured on both shipped models' outputs: whole heads (real and
synthetic, any contrast and resolution) 0.19-0.81; skull-stripped brains (the real moved ones, the sample's,
the synthetic validation volumes) 0.000-0.015. About 0.02 s on a 1 mm head.

Written here because MONAI's label-shift tools work on classifier outputs per image, not per voxel with a
scan-type condition.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from medseg.inference.intensity_refinement import FLOOR_FRACTION

FAR_MM = 8.0
STRIPPED_FAR_FRACTION = 0.05
# Detection runs on a grid strided to about this spacing (mm): an 8 mm distance test needs no finer one.
DETECTION_SPACING_MM = 4.0


@dataclass(frozen=True)
class StrippedCheck:
    """What ``adapt_to_skull_stripped`` found.

    Attributes:
        skull_stripped: the scan was judged skull-stripped (and the background's odds were lowered).
        far_fraction: share of the signal voxels farther than ``FAR_MM`` from the network's tissue.
        odds: the factor applied to the background's odds: ``stripped_background_odds`` on a skull-stripped scan,
            ``head_background_odds`` on a whole head once ``raise_head_background_odds`` applied it, else 1.
    """

    skull_stripped: bool
    far_fraction: float
    odds: float

    def to_dict(self) -> dict[str, object]:
        return {"skull_stripped": self.skull_stripped, "far_fraction": self.far_fraction, "odds": self.odds}


def signal_floor(image: np.ndarray) -> float:
    """``FLOOR_FRACTION`` of the 99th percentile of the positive voxels of ``image`` (0 when none are positive)."""
    positive = image[image > 0]
    return FLOOR_FRACTION * float(np.percentile(positive, 99)) if positive.size else 0.0


def detection_stride(spacing: tuple[float, ...]) -> tuple[int, ...]:
    """Per-axis stride that brings ``spacing`` (mm) to about ``DETECTION_SPACING_MM``."""
    return tuple(max(1, int(round(DETECTION_SPACING_MM / float(s)))) for s in spacing)


def far_fraction(signal: np.ndarray, tissue: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Share of ``signal`` voxels more than ``FAR_MM`` from ``tissue`` (both (I, J, K) bool, voxel size ``spacing``)."""
    count = int(signal.sum())
    if count == 0:
        return 0.0
    if not tissue.any():
        return 1.0
    distance = ndimage.distance_transform_edt(~tissue, sampling=[float(s) for s in spacing])
    return float((signal & (distance > FAR_MM)).sum() / count)


def scale_background_odds(probabilities: np.ndarray, where: np.ndarray | None, odds: float) -> None:
    """Multiply class 0's odds by ``odds`` > 0 at ``where`` (None: everywhere) in (C, I, J, K) ``probabilities``.

    In place: p0' = k p0 / (k p0 + 1 - p0); the other classes are scaled by (1 - p0') / (1 - p0), so each voxel
    still sums to 1 and the tissue classes keep their ratios.
    """
    background = probabilities[0] if where is None else probabilities[0][where]
    scaled = odds * background / (odds * background + (1.0 - background))
    scale = (1.0 - scaled) / np.maximum(1.0 - background, 1e-12)
    if where is None:
        probabilities[1:] *= scale  # broadcast over the classes: no (C, I, J, K) temporary
        probabilities[0] = scaled
        return
    for index in range(1, probabilities.shape[0]):
        probabilities[index][where] *= scale
    probabilities[0][where] = scaled


def raise_head_background_odds(probabilities: np.ndarray, check: StrippedCheck, odds: float) -> StrippedCheck:
    """On a scan with the skull on (``check`` not skull-stripped), the background's odds x ``odds`` everywhere.

    Args:
        probabilities: (C, I, J, K) float32, class 0 the background; changed in place unless skull-stripped.
        check: ``adapt_to_skull_stripped``'s finding for this scan.
        odds: the factor, >= 1 (module docstring; 1 = off).

    Returns:
        ``check`` with ``odds`` recording the factor applied.
    """
    if odds < 1.0:
        raise ValueError(f"head_background_odds must be >= 1, got {odds}")
    if check.skull_stripped or odds == 1.0:
        return check
    scale_background_odds(probabilities, None, odds)
    return replace(check, odds=odds)


def _block_any(background: np.ndarray, stride: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """(shape) bool: any voxel of each stride block is tissue (``background`` < 0.5): thin tissue is not lost."""
    tissue = np.zeros(shape, dtype=bool)
    for offset in itertools.product(*(range(step) for step in stride)):
        part = background[tuple(slice(start, None, step) for start, step in zip(offset, stride))] < 0.5
        tissue[tuple(slice(0, n) for n in part.shape)] |= part
    return tissue


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
    # Detection on a grid strided to about 4 mm (the floor's percentile included): 1/64 of a 1 mm scan's voxels.
    stride = detection_stride(spacing)
    view = tuple(slice(None, None, step) for step in stride)
    coarse = image[view]
    floor = signal_floor(coarse)
    coarse_signal = coarse > floor
    fraction = far_fraction(coarse_signal, _block_any(probabilities[0], stride, coarse.shape),
                            tuple(float(s) * step for s, step in zip(spacing, stride)))
    stripped = bool(coarse_signal.any()) and fraction < STRIPPED_FAR_FRACTION
    if stripped and odds < 1.0:
        scale_background_odds(probabilities, image > floor, odds)
    return StrippedCheck(stripped, fraction, odds if stripped else 1.0)
