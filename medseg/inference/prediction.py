"""One scan's result, and the card's finish from calibrated probabilities to that result.

``finish_prediction``: the argmax and the uncertainty map (``medseg.inference.finish``), the clean-up
(``CleanUp``: foreground opening and largest foreground, largest component per class, small components by
mL; ``medseg.inference.postprocess``), class volumes and QC flags (``medseg.inference.qc``). It runs once
per scan on the source grid, after an ensemble's members have been averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from medseg.inference.finish import labels_and_uncertainty
from medseg.inference.foreground_opening import open_foreground
from medseg.inference.intensity_refinement import RefinementFit
from medseg.inference.model_card import ModelCard
from medseg.inference.outline_member import OutlineTrim
from medseg.inference.postprocess import (
    class_volumes_ml,
    keep_largest_component,
    keep_largest_foreground,
    remove_small_components,
)
from medseg.inference.qc import mean_foreground_uncertainty, qc_flags
from medseg.inference.stripped_scan import StrippedCheck
from medseg.types import LabelVolume, Volume


@dataclass(frozen=True, eq=False)
class Prediction:
    """The result for one scan, on the scan's grid.

    Attributes:
        labels: (I, J, K) labels; ``labels.affine`` equals the input volume's affine.
        probabilities: (C, I, J, K) float32 calibrated class probabilities, summing to 1 over C.
        uncertainty: (I, J, K) float32 predictive entropy / log(C), in 0..1.
        qc_flags: triage flags (``medseg.inference.qc``), empty when nothing stands out.
        class_volumes_ml: predicted volume per foreground class name, after clean-up.
        mean_uncertainty: mean ``uncertainty`` inside the predicted structures (NaN when empty).
        timings: seconds per stage (``preprocess``, ``network``, ``resample``, ``stripped`` when the card lowers
            the background's odds on skull-stripped scans, ``outline`` when an outline member trimmed the outline
            (its network's seconds are in ``network``), ``refine`` when it refines by intensity, ``postprocess``,
            ``total``).
        refinement: the intensity refinement's fit (None when the card has none or it was switched off).
        stripped: the skull-stripped check (None when the card's ``stripped_background_odds`` is 1).
        outline: what the ensemble's outline member did (None without one, or on a skull-stripped scan).
    """

    labels: LabelVolume
    probabilities: np.ndarray
    uncertainty: np.ndarray
    qc_flags: tuple[str, ...]
    class_volumes_ml: dict[str, float]
    mean_uncertainty: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)
    refinement: RefinementFit | None = None
    stripped: StrippedCheck | None = None
    outline: OutlineTrim | None = None


@dataclass(frozen=True)
class CleanUp:
    """The clean-up of a label map after the argmax: the card's postprocess, with any caller's overrides.

    Attributes:
        largest_foreground: keep only the largest connected piece of all foreground classes together.
        foreground_opening_mm: with ``largest_foreground``, first cut pieces joined through bridges narrower
            than this radius (``medseg.inference.foreground_opening``; 0 = off).
        largest_component: keep only each class's largest connected component.
        min_component_ml: drop components smaller than this (mL; 0 = off).
    """

    largest_foreground: bool = False
    foreground_opening_mm: float = 0.0
    largest_component: bool = False
    min_component_ml: float = 0.0

    def apply(self, labels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        """(I, J, K) labels cleaned up; ``spacing`` in mm."""
        if self.largest_foreground:
            if self.foreground_opening_mm > 0:
                labels = open_foreground(labels, spacing, self.foreground_opening_mm)
            labels = keep_largest_foreground(labels)
        if self.largest_component:
            labels = keep_largest_component(labels)
        if self.min_component_ml > 0:
            labels = remove_small_components(labels, spacing, self.min_component_ml)
        return labels


def finish_prediction(
    volume: Volume, probabilities: np.ndarray, card: ModelCard, clean_up: CleanUp, timings: dict[str, float],
    disagreement: float = math.nan, refinement: RefinementFit | None = None, stripped: StrippedCheck | None = None,
    outline: OutlineTrim | None = None,
) -> Prediction:
    """Labels, clean-up, uncertainty, volumes and QC flags from source-grid probabilities (C, I, J, K).

    ``disagreement``: share of predicted voxels changing class between TTA passes (NaN without TTA).
    """
    labels, uncertainty = labels_and_uncertainty(probabilities)
    labels = clean_up.apply(labels, volume.spacing)
    volumes = class_volumes_ml(labels, volume.spacing, card.class_names)
    mean_uncertainty = mean_foreground_uncertainty(labels, uncertainty)
    flags = qc_flags(card.qc, volume, volumes, mean_uncertainty, labels=labels, tta_disagreement=disagreement)
    if outline is not None and outline.qc_flag():
        flags = (*flags, outline.qc_flag())
    label_volume = LabelVolume(labels, np.array(volume.affine, dtype=np.float64, copy=True), card.class_names)
    return Prediction(label_volume, probabilities, uncertainty, flags, volumes, mean_uncertainty, timings,
                      refinement, stripped, outline)
