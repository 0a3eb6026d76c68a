"""Per-label intensity models: means and within-label spread for each generation label.

T1-, T2- and PD-like contrasts draw each label's mean from a range typical of that weighting
(relative to the brightest tissue = 1); ``"random"`` draws every mean uniformly, as SynthSeg
does, so the network cannot rely on any one contrast. Air stays dark in every model.
"""

from __future__ import annotations

import numpy as np

from medseg.data.synth.head import GENERATION_LABELS, LATE_LABELS, MIXED_TISSUES

# (low, high) of each label's mean per contrast, in GENERATION_LABELS order.
MEAN_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "t1": {
        "air": (0.0, 0.03), "csf_sulcal": (0.08, 0.32), "csf_ventricle": (0.05, 0.25),
        "gm_cortex": (0.38, 0.58), "gm_deep": (0.5, 0.68), "wm": (0.68, 0.92), "csf_rim": (0.05, 0.3),
        "bone": (0.0, 0.1), "marrow": (0.45, 0.95), "muscle": (0.25, 0.5), "fat": (0.75, 1.0),
        "eye": (0.05, 0.3), "soft_tissue": (0.3, 0.6), **{name: (0.15, 0.95) for name in MIXED_TISSUES},
        "dura": (0.12, 0.42),
    },
    "t2": {
        "air": (0.0, 0.03), "csf_sulcal": (0.7, 1.0), "csf_ventricle": (0.8, 1.0),
        "gm_cortex": (0.45, 0.68), "gm_deep": (0.38, 0.58), "wm": (0.25, 0.45), "csf_rim": (0.7, 1.0),
        "bone": (0.0, 0.1), "marrow": (0.25, 0.7), "muscle": (0.12, 0.35), "fat": (0.5, 0.9),
        "eye": (0.75, 1.0), "soft_tissue": (0.3, 0.6), **{name: (0.1, 0.95) for name in MIXED_TISSUES},
        "dura": (0.05, 0.4),
    },
    "pd": {
        "air": (0.0, 0.03), "csf_sulcal": (0.55, 0.85), "csf_ventricle": (0.6, 0.9),
        "gm_cortex": (0.62, 0.82), "gm_deep": (0.58, 0.75), "wm": (0.45, 0.62), "csf_rim": (0.55, 0.85),
        "bone": (0.0, 0.12), "marrow": (0.45, 0.8), "muscle": (0.35, 0.6), "fat": (0.65, 0.95),
        "eye": (0.6, 0.9), "soft_tissue": (0.4, 0.7), **{name: (0.2, 0.95) for name in MIXED_TISSUES},
        "dura": (0.35, 0.65),
    },
}
# The template's own brain comes with a T1-like head.
MEAN_RANGES["template"] = MEAN_RANGES["t1"]


def draw_intensities(
    contrast: str, rng: np.random.Generator, late_rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every generation label.

    Args:
        contrast: ``"t1"``, ``"t2"``, ``"pd"``, ``"template"`` or ``"random"``.
        rng: the volume's generator (every label but ``LATE_LABELS``, in ``GENERATION_LABELS`` order).
        late_rng: draws ``LATE_LABELS``; None gives them the CSF rim's values (volumes without them).

    Returns:
        ``(means, stds)``, each (len(GENERATION_LABELS),) float32.
    """
    early = [name for name in GENERATION_LABELS if name not in LATE_LABELS]
    means, stds = _draw(contrast, early, rng)
    if late_rng is None:
        rim = early.index("csf_rim")
        late_means, late_stds = np.full(len(LATE_LABELS), means[rim]), np.full(len(LATE_LABELS), stds[rim])
    else:
        late_means, late_stds = _draw(contrast, list(LATE_LABELS), late_rng)
    # LATE_LABELS close GENERATION_LABELS, so appending keeps every label at its index.
    return (np.concatenate([means, late_means]).astype(np.float32),
            np.concatenate([stds, late_stds]).astype(np.float32))


def _draw(contrast: str, names: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations of ``names`` (float64 arrays in that order)."""
    count = len(names)
    if contrast == "random":
        means = rng.uniform(0.0, 1.0, count)
        if "air" in names:
            means[names.index("air")] = rng.uniform(0.0, 0.05)
    elif contrast in MEAN_RANGES:
        ranges = MEAN_RANGES[contrast]
        means = np.array([rng.uniform(*ranges[name]) for name in names])
    else:
        raise ValueError(f"unknown synthetic contrast '{contrast}' (t1, t2, pd, template, random)")
    stds = rng.uniform(0.0, 0.06, count) * (0.3 + means)
    return means, stds
