"""One synthetic volume's random choices, drawn from a seed apart from their application.

Drawing every parameter first (as TorchIO does) makes a volume reproducible from its seed,
lets validation sets force a kind (a contrast, thick slices, a whole head) and lets the model
card record the ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from medseg.config import SynthConfig

CONTRASTS = ("t1", "t2", "pd", "random")


@dataclass(frozen=True)
class SynthParams:
    """Random choices of one volume (angles in radians, lengths in mm).

    Attributes:
        seed: seeds the voxel-level randomness (noise, fields) of this volume.
        contrast: ``"t1"``, ``"t2"``, ``"pd"``, ``"random"`` or ``"template"`` (the template T1's own brain).
        whole_head: skull, scalp, orbits and neck around the brain; else skull-stripped.
        strip_margin_mm: skull-stripped volumes keep this much beyond the brain mask.
        rotation: rotation angles about the R, A, S axes.
        scale: zoom per axis.
        translation_mm: shift of the head in the field of view.
        elastic_mm: standard deviation of the elastic displacement.
        elastic_points: coarse grid size of the elastic field.
        thick_axis: axis (0 R, 1 A, 2 S) acquired with thick slices, or -1.
        slice_spacing_mm: slice spacing along ``thick_axis``.
        bias_std: standard deviation of the log bias field.
        gamma: contrast exponent.
        noise_std: Rician noise level relative to the brightest tissue.
        flip: mirror left and right.
        rim_csf_ratio: the CSF rim's mean intensity over the sulcal CSF's; 0 = drawn independently.
        dura_mm: thickness of the dura layer at the inner surface of the skull (whole heads); 0 = none.
        temporalis_mm: greatest thickness of the temporalis muscles (whole heads); 0 = none.
    """

    seed: int
    contrast: str
    whole_head: bool
    strip_margin_mm: float
    rotation: tuple[float, float, float]
    scale: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    elastic_mm: float
    elastic_points: int
    thick_axis: int
    slice_spacing_mm: float
    bias_std: float
    gamma: float
    noise_std: float
    flip: bool
    rim_csf_ratio: float = 0.0
    dura_mm: float = 0.0
    temporalis_mm: float = 0.0


def draw_params(config: SynthConfig, seed: int | tuple[int, ...], **forced: Any) -> SynthParams:
    """Draw one volume's parameters from ``config``'s ranges; ``forced`` fixes chosen fields.

    Args:
        config: the generator's ranges.
        seed: an int or a tuple such as ``(run_seed, epoch, index)``; the same seed gives the same volume.
        forced: ``SynthParams`` field values to impose (validation sets: ``contrast="t2"`` ...).
    """
    rng = np.random.default_rng(seed)
    weights = np.asarray(config.contrast_weights, dtype=np.float64)
    if weights.shape != (len(CONTRASTS),) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(f"data.synth.contrast_weights: need {len(CONTRASTS)} non-negative weights, got {weights}")
    template = rng.random() < config.template_prob
    contrast = "template" if template else str(rng.choice(CONTRASTS, p=weights / weights.sum()))
    angle = np.deg2rad(config.rotate_deg)
    thick = rng.random() < config.thick_slice_prob
    params = SynthParams(
        seed=int(rng.integers(2**31 - 1)),
        contrast=contrast,
        whole_head=bool(rng.random() < config.whole_head_prob),
        strip_margin_mm=float(rng.uniform(0.0, 3.0)),
        rotation=tuple(float(a) for a in rng.uniform(-angle, angle, 3)),
        scale=tuple(float(s) for s in rng.uniform(1 - config.scale, 1 + config.scale, 3)),
        translation_mm=tuple(float(t) for t in rng.uniform(-config.translate_mm, config.translate_mm, 3)),
        elastic_mm=float(rng.uniform(0.0, config.elastic_mm)),
        elastic_points=int(rng.integers(4, 9)),
        # Axial slices (thick along S) are the common clinical 2D acquisition.
        thick_axis=int(rng.choice([0, 1, 2], p=[0.2, 0.3, 0.5])) if thick else -1,
        slice_spacing_mm=float(rng.uniform(*config.slice_spacing_mm)) if thick else 0.0,
        bias_std=float(rng.uniform(0.0, config.bias_std)),
        gamma=float(np.exp(rng.normal(0.0, config.gamma_std))),
        noise_std=float(rng.uniform(*config.noise_std)),
        flip=bool(config.flip and rng.random() < 0.5),
    )
    if config.rim_csf_tied_prob > 0 or config.dura_prob > 0 or config.temporalis_prob > 0:
        # Their own generator, after every earlier draw: streams without them stay bit for bit as they were
        # (and each later setting's draws come after the earlier settings').
        late = np.random.default_rng((params.seed, 2))
        tied = late.random() < config.rim_csf_tied_prob
        ratio = float(late.uniform(0.85, 1.15))
        dura = late.random() < config.dura_prob
        thickness = float(late.uniform(*config.dura_mm))
        temporalis = late.random() < config.temporalis_prob
        muscle = float(late.uniform(*config.temporalis_mm))
        params = replace(params, rim_csf_ratio=ratio if tied else 0.0, dura_mm=thickness if dura else 0.0,
                         temporalis_mm=muscle if temporalis else 0.0)
    return replace(params, **forced) if forced else params
