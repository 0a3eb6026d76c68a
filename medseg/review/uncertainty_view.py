"""The uncertainty a reader sees: the map near the predicted contours, not over the face.

On a whole head the calibrated probabilities stay uncertain over tissue the clean-up removed (face, neck,
temporal muscle): the map is honest there, but those voxels carry no contour to check, and a bright
overlay over the face draws the eye away from the brain's outline. ``near_labels`` keeps the map within
``NEAR_CONTOUR_MM`` of any labelled voxel (errors of the outline itself, tissue missed just outside it,
lie there) and zeroes it beyond. The full map stays in the result files and the viewer can show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

NEAR_CONTOUR_MM = 10.0


def near_labels(uncertainty: np.ndarray, labels: np.ndarray, spacing: Sequence[float], *,
                margin_mm: float = NEAR_CONTOUR_MM) -> np.ndarray:
    """``uncertainty`` (I, J, K) where a voxel centre lies within ``margin_mm`` of a voxel with label > 0, else 0.

    Args:
        uncertainty: (I, J, K) map, 0..1.
        labels: (I, J, K) labels on the same grid (0 = background).
        spacing: voxel size (mm) along I, J, K.
    Returns: (I, J, K) float32; all zeros when nothing is labelled.
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float32)
    labels = np.asarray(labels)
    if uncertainty.shape != labels.shape:
        raise ValueError(f"uncertainty {uncertainty.shape} and labels {labels.shape} are on different grids")
    background = labels == 0
    if background.all():
        return np.zeros_like(uncertainty)
    distance = ndimage.distance_transform_edt(background, sampling=[float(v) for v in spacing])
    return np.where(distance <= margin_mm, uncertainty, np.float32(0.0))
