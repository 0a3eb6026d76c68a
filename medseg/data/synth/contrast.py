"""Per-label intensity models: means and within-label spread for each generation label.

T1-, T2- and PD-like contrasts draw each label's mean from a range typical of that weighting
(relative to the brightest tissue = 1); ``"random"`` draws every mean uniformly, as SynthSeg
does, so the network cannot rely on any one contrast. Air stays dark in every model.
"""

from __future__ import annotations

import numpy as np

from medseg.data.synth.head import GENERATION_LABELS, MIXED_TISSUES

# (low, high) of each label's mean per contrast, in GENERATION_LABELS order.
MEAN_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "t1": {
        "air": (0.0, 0.03), "csf_sulcal": (0.08, 0.32), "csf_ventricle": (0.05, 0.25),
        "gm_cortex": (0.38, 0.58), "gm_deep": (0.5, 0.68), "wm": (0.68, 0.92), "csf_rim": (0.05, 0.3),
        "bone": (0.0, 0.1), "marrow": (0.45, 0.95), "muscle": (0.25, 0.5), "fat": (0.75, 1.0),
        "eye": (0.05, 0.3), "soft_tissue": (0.3, 0.6), **{name: (0.15, 0.95) for name in MIXED_TISSUES},
    },
    "t2": {
        "air": (0.0, 0.03), "csf_sulcal": (0.7, 1.0), "csf_ventricle": (0.8, 1.0),
        "gm_cortex": (0.45, 0.68), "gm_deep": (0.38, 0.58), "wm": (0.25, 0.45), "csf_rim": (0.7, 1.0),
        "bone": (0.0, 0.1), "marrow": (0.25, 0.7), "muscle": (0.12, 0.35), "fat": (0.5, 0.9),
        "eye": (0.75, 1.0), "soft_tissue": (0.3, 0.6), **{name: (0.1, 0.95) for name in MIXED_TISSUES},
    },
    "pd": {
        "air": (0.0, 0.03), "csf_sulcal": (0.55, 0.85), "csf_ventricle": (0.6, 0.9),
        "gm_cortex": (0.62, 0.82), "gm_deep": (0.58, 0.75), "wm": (0.45, 0.62), "csf_rim": (0.55, 0.85),
        "bone": (0.0, 0.12), "marrow": (0.45, 0.8), "muscle": (0.35, 0.6), "fat": (0.65, 0.95),
        "eye": (0.6, 0.9), "soft_tissue": (0.4, 0.7), **{name: (0.2, 0.95) for name in MIXED_TISSUES},
    },
}
# The template's own brain comes with a T1-like head.
MEAN_RANGES["template"] = MEAN_RANGES["t1"]


def draw_intensities(contrast: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every generation label.

    Args:
        contrast: ``"t1"``, ``"t2"``, ``"pd"``, ``"template"`` or ``"random"``.
        rng: the volume's generator.

    Returns:
        ``(means, stds)``, each (len(GENERATION_LABELS),) float32.
    """
    count = len(GENERATION_LABELS)
    if contrast == "random":
        means = rng.uniform(0.0, 1.0, count)
        means[GENERATION_LABELS.index("air")] = rng.uniform(0.0, 0.05)
    elif contrast in MEAN_RANGES:
        ranges = MEAN_RANGES[contrast]
        means = np.array([rng.uniform(*ranges[name]) for name in GENERATION_LABELS])
    else:
        raise ValueError(f"unknown synthetic contrast '{contrast}' (t1, t2, pd, template, random)")
    stds = rng.uniform(0.0, 0.06, count) * (0.3 + means)
    return means.astype(np.float32), stds.astype(np.float32)
