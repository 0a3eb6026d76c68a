"""Generation labels outside the brain: a synthetic head around the template's brain mask.

The template is skull-stripped, so everything a whole-head scan shows outside the brain is
drawn here, on the output grid, from the distance to the brain (``dist_out``, template mm)
and the template coordinates of each output voxel: a CSF rim, the skull (cortical tables and
diploe), scalp muscle and fat, orbits with orbital fat, the face with an air sinus, and a neck
with a spine. Thicknesses vary smoothly in space and between volumes. Every one of these
labels is segmented as background; they exist to give the intensity model structure.
"""

from __future__ import annotations

import numpy as np
import torch

from medseg.data.synth.fields import smooth_field

GENERATION_LABELS = (
    "air", "csf_sulcal", "csf_ventricle", "gm_cortex", "gm_deep", "wm",
    "csf_rim", "bone", "marrow", "muscle", "fat", "eye", "soft_tissue",
    "tissue_a", "tissue_b", "tissue_c", "tissue_d",
)
# Soft tissue of the neck, face and scalp split into random patches of these labels, whose intensities
# span the brain's: a real head holds muscle, glands, tongue and vessels that look like gray or white
# matter, and the network must learn that such texture outside the skull is background.
MIXED_TISSUES = ("tissue_a", "tissue_b", "tissue_c", "tissue_d")
LABEL = {name: index for index, name in enumerate(GENERATION_LABELS)}


def _ellipsoid(coords: torch.Tensor, centre: tuple[float, ...], radii: tuple[float, ...]) -> torch.Tensor:
    """Squared normalised radius of each point (<= 1 inside). coords: (3, I, J, K) mm."""
    total = torch.zeros(coords.shape[1:])
    for axis in range(3):
        if radii[axis] > 0:
            total += ((coords[axis] - centre[axis]) / radii[axis]) ** 2
    return total


def head_labels(
    dist_out: torch.Tensor, coords: torch.Tensor, rng: np.random.Generator, generator: torch.Generator
) -> torch.Tensor:
    """Generation labels of the head outside the brain (0 air where nothing is drawn).

    Args:
        dist_out: (I, J, K) mm from the brain mask at each output voxel (0 inside).
        coords: (3, I, J, K) template RAS mm of each output voxel.
        rng: draws the head's shape parameters.
        generator: draws the smooth thickness fields.

    Returns:
        (I, J, K) int64 indices into ``GENERATION_LABELS`` (brain voxels get ``csf_rim`` or
        other non-brain labels; the caller keeps the brain's own mixture there).
    """
    shape = dist_out.shape
    vary = torch.sigmoid(1.5 * smooth_field(shape, 3, 5, generator))
    rim = float(rng.uniform(0.5, 2.0)) + 2.5 * vary[0]
    skull = float(rng.uniform(4.0, 7.5)) * (0.7 + 0.6 * vary[1])
    scalp = float(rng.uniform(4.0, 11.0)) * (0.6 + 0.8 * vary[2])
    diploe = float(rng.uniform(0.25, 0.5))
    fat_share = float(rng.uniform(0.3, 0.7))

    labels = torch.zeros(shape, dtype=torch.int64)
    skull_in, skull_out = rim, rim + skull
    scalp_out = skull_out + scalp
    middle = (dist_out - skull_in) / skull
    labels[(dist_out > 0) & (dist_out <= rim)] = LABEL["csf_rim"]
    labels[(dist_out > skull_in) & (dist_out <= skull_out)] = LABEL["bone"]
    labels[(middle > 0.5 - diploe / 2) & (middle < 0.5 + diploe / 2)] = LABEL["marrow"]
    labels[(dist_out > skull_out) & (dist_out <= skull_out + scalp * (1 - fat_share))] = LABEL["muscle"]
    labels[(dist_out > skull_out + scalp * (1 - fat_share)) & (dist_out <= scalp_out)] = LABEL["fat"]
    outside = dist_out > 2.0

    # Neck below the brain: an elliptic cylinder of soft tissue with a fat ring and a spine.
    z = coords[2]
    neck_top = float(rng.uniform(-60.0, -40.0))
    neck_y = float(rng.uniform(-30.0, -10.0))
    radii = (float(rng.uniform(48.0, 65.0)), float(rng.uniform(50.0, 68.0)), 0.0)
    neck = _ellipsoid(coords, (0.0, neck_y, 0.0), radii)
    below = (z < neck_top) & (labels == LABEL["air"]) & outside
    labels[below & (neck <= 1.0)] = LABEL["fat"]
    labels[below & (neck <= (1.0 - 8.0 / radii[0]) ** 2)] = LABEL["soft_tissue"]
    spine = _ellipsoid(coords, (0.0, neck_y - 12.0, 0.0), (13.0, 11.0, 0.0))
    labels[below & (spine <= 1.0)] = LABEL["bone"]
    labels[below & (spine <= 0.55)] = LABEL["marrow"]
    # The spinal canal behind it: CSF around a cord that continues the brainstem and looks like it,
    # but lies outside the brain mask (background), as the medulla's continuation does in a real neck.
    canal_y = float(rng.uniform(-48.0, -38.0))
    cord_top = float(rng.uniform(-95.0, -70.0))
    canal = _ellipsoid(coords, (0.0, canal_y, 0.0), (9.0, 8.0, 0.0))
    below_brain = (z < cord_top + 25.0) & outside
    labels[below_brain & (canal <= 1.0)] = LABEL["csf_rim"]
    labels[below_brain & (canal <= 0.35)] = LABEL["tissue_b"]

    # Face in front of and below the frontal lobes, with an air sinus.
    face = _ellipsoid(coords, (0.0, float(rng.uniform(40.0, 50.0)), float(rng.uniform(-55.0, -45.0))),
                      (float(rng.uniform(50.0, 62.0)), float(rng.uniform(45.0, 55.0)), float(rng.uniform(38.0, 48.0))))
    in_face = (face <= 1.0) & (labels == LABEL["air"]) & outside
    labels[in_face] = LABEL["soft_tissue"]
    labels[in_face & (face > 0.8)] = LABEL["fat"]
    sinus_size = float(rng.uniform(0.6, 1.2))
    sinus = _ellipsoid(coords, (0.0, 52.0, -45.0), (16.0 * sinus_size, 14.0 * sinus_size, 14.0 * sinus_size))
    labels[in_face & (sinus <= 1.0)] = LABEL["air"]

    # Orbits: eyes in orbital fat, never over the brain.
    eye_x, eye_y, eye_z = (float(rng.uniform(29.0, 35.0)), float(rng.uniform(44.0, 54.0)),
                           float(rng.uniform(-42.0, -32.0)))
    radius = float(rng.uniform(10.0, 13.0))
    fat_radius = radius + float(rng.uniform(3.0, 7.0))
    for side in (-1.0, 1.0):
        orbit = _ellipsoid(coords, (side * eye_x, eye_y, eye_z), (fat_radius, fat_radius, fat_radius))
        labels[(orbit <= 1.0) & outside] = LABEL["fat"]
        eye = _ellipsoid(coords, (side * eye_x, eye_y, eye_z), (radius, radius, radius))
        labels[(eye <= 1.0) & outside] = LABEL["eye"]

    if rng.random() < 0.8:
        soft = (labels == LABEL["soft_tissue"]) | (labels == LABEL["muscle"])
        field = smooth_field(shape, 1, int(rng.integers(6, 14)), generator)[0]
        edges = torch.quantile(field.flatten()[:: max(field.numel() // 100_000, 1)],
                               torch.tensor([0.25, 0.5, 0.75]))
        patch = torch.bucketize(field, edges)
        for index, name in enumerate(MIXED_TISSUES):
            labels[soft & (patch == index)] = LABEL[name]
    return labels
