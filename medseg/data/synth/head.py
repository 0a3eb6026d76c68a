"""Generation labels outside the brain: a synthetic head around the template's brain mask.

The template is skull-stripped, so everything a whole-head scan shows outside the brain is
drawn here, on the output grid, from the distance to the brain (``dist_out``, template mm)
and the template coordinates of each output voxel: a CSF rim, the skull (cortical tables and
diploe), scalp muscle and fat, orbits with orbital fat, the face with its sinuses, nasal cavity,
palate, tongue and pharynx (``_face_cavities``), and a neck with a spine. Thicknesses vary smoothly
in space and between volumes. Every one of these labels is segmented as background; they exist to
give the intensity model structure.
"""

from __future__ import annotations

import numpy as np
import torch

from medseg.data.synth.fields import smooth_field

GENERATION_LABELS = (
    "air", "csf_sulcal", "csf_ventricle", "gm_cortex", "gm_deep", "wm",
    "csf_rim", "bone", "marrow", "muscle", "fat", "eye", "soft_tissue",
    "tissue_a", "tissue_b", "tissue_c", "tissue_d", "dura",
)
# Labels whose intensities are drawn after all the others, from their own generator, so that
# streams that never use them keep every earlier draw (``draw_intensities``).
LATE_LABELS = ("dura",)
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


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One uniform draw as a Python float."""
    return float(rng.uniform(low, high))


def _face_cavities(
    labels: torch.Tensor, dist_out: torch.Tensor, coords: torch.Tensor, rng: np.random.Generator,
    generator: torch.Generator,
) -> None:
    """Paint the ethmoid cells, nasal cavity with septum and conchae, maxillary and sphenoid sinuses,
    hard palate, tongue and pharynx into ``labels`` (in place).

    Why: on a real T1 head the one tissue-like piece the model kept outside the brain (77 mL) lay under the
    frontal lobes, where mucosa of the ethmoid cells and conchae, and the tongue below, look like gray
    matter and sit 1-3 mm from the brain across a thin cribriform plate. The earlier face was one air
    sinus behind a skull at least 4 mm thick, so the network never saw tissue-like texture that close.
    Mucosa, conchae and the tongue take the mixed labels, whose intensities span the brain's.

    Args:
        labels: (I, J, K) generation labels, modified.
        dist_out: (I, J, K) mm from the brain mask.
        coords: (3, I, J, K) template RAS mm.
    """
    mucosa = [LABEL[name] for name in MIXED_TISSUES]
    floor = _uniform(rng, 1.0, 3.0)  # the cribriform plate and the thin bone over the cells
    clear = dist_out > floor  # the orbits are drawn after this, over whatever is here

    # Ethmoid labyrinth between the orbits: air cells in a honeycomb of mucosa, up to the thin floor.
    ethmoid = _ellipsoid(coords, (0.0, _uniform(rng, 28.0, 40.0), _uniform(rng, -42.0, -30.0)),
                         (_uniform(rng, 9.0, 13.0), _uniform(rng, 14.0, 20.0), _uniform(rng, 9.0, 14.0)))
    cells = smooth_field(labels.shape, 1, int(rng.integers(18, 30)), generator)[0]
    inside = (ethmoid <= 1.0) & clear
    labels[inside] = int(rng.choice(mucosa))
    labels[inside & (cells > _uniform(rng, -0.4, 0.3))] = LABEL["air"]

    # Sphenoid sinus behind and below it.
    sphenoid = _ellipsoid(coords, (0.0, _uniform(rng, 4.0, 14.0), _uniform(rng, -48.0, -38.0)),
                          (_uniform(rng, 8.0, 12.0), _uniform(rng, 8.0, 12.0), _uniform(rng, 6.0, 10.0)))
    labels[(sphenoid <= 1.0) & clear] = LABEL["air"]

    # Nasal cavity: air around a septum and three conchae per side (mucosa).
    centre = (0.0, _uniform(rng, 35.0, 45.0), _uniform(rng, -64.0, -54.0))
    radii = (_uniform(rng, 12.0, 16.0), _uniform(rng, 25.0, 32.0), _uniform(rng, 12.0, 16.0))
    nasal = (_ellipsoid(coords, centre, radii) <= 1.0) & clear
    labels[nasal] = LABEL["air"]
    labels[nasal & (coords[0].abs() < _uniform(rng, 1.0, 2.0))] = int(rng.choice([LABEL["soft_tissue"], *mucosa]))
    for side in (-1.0, 1.0):
        for level in (8.0, 0.0, -8.0):
            concha = _ellipsoid(coords, (side * _uniform(rng, 6.0, 10.0), centre[1], centre[2] + level),
                                (_uniform(rng, 3.0, 5.0), radii[1] * _uniform(rng, 0.5, 0.8), _uniform(rng, 2.5, 4.5)))
            labels[nasal & (concha <= 1.0)] = int(rng.choice(mucosa))

    # Maxillary sinuses beside it, often with a mucosal lining.
    for side in (-1.0, 1.0):
        maxillary = _ellipsoid(coords, (side * _uniform(rng, 22.0, 30.0), _uniform(rng, 34.0, 46.0),
                                        _uniform(rng, -68.0, -56.0)),
                               (_uniform(rng, 9.0, 14.0), _uniform(rng, 11.0, 16.0), _uniform(rng, 10.0, 15.0)))
        cavity = (maxillary <= 1.0) & clear
        labels[cavity] = LABEL["air"]
        if rng.random() < 0.6:
            labels[cavity & (maxillary > _uniform(rng, 0.55, 0.8))] = int(rng.choice(mucosa))

    # Hard palate (cortical bone around marrow), the tongue below it, the pharynx behind.
    palate_z = _uniform(rng, -84.0, -74.0)
    plate = (coords[2] - palate_z).abs() < _uniform(rng, 2.0, 3.5)
    span = (coords[1] > _uniform(rng, 0.0, 10.0)) & (coords[1] < _uniform(rng, 60.0, 75.0)) & (coords[0].abs() < 32.0)
    palate = plate & span & clear
    labels[palate] = LABEL["bone"]
    labels[palate & ((coords[2] - palate_z).abs() < 1.0)] = LABEL["marrow"]
    tongue = _ellipsoid(coords, (0.0, _uniform(rng, 22.0, 34.0), palate_z - _uniform(rng, 14.0, 20.0)),
                        (_uniform(rng, 20.0, 28.0), _uniform(rng, 26.0, 35.0), _uniform(rng, 12.0, 17.0)))
    labels[(tongue <= 1.0) & clear] = int(rng.choice(mucosa))
    pharynx = _ellipsoid(coords, (0.0, _uniform(rng, -2.0, 8.0), 0.0),
                         (_uniform(rng, 7.0, 12.0), _uniform(rng, 4.0, 8.0), 0.0))
    labels[(pharynx <= 1.0) & (coords[2] < centre[2] + 6.0) & (coords[2] > -150.0) & clear] = LABEL["air"]


def _temporal_weight(coords: torch.Tensor, late: np.random.Generator) -> torch.Tensor:
    """(I, J, K) weight in [0, 1] of the temporal fossa on both sides: 1 at its centre, 0 above 50 mm (S).

    Real T1 heads show a temporalis muscle up to 1-2 cm thick, as gray as cortex, right outside a
    2-3 mm temporal bone next to the temporal lobe: without it the network calls it cortex.
    """
    centre_y, centre_z = float(late.uniform(-20.0, 5.0)), float(late.uniform(-15.0, 10.0))
    radius_y, radius_z = float(late.uniform(35.0, 45.0)), float(late.uniform(30.0, 40.0))
    x, y, z = coords
    lateral = torch.sigmoid((x.abs() - 35.0) / 4.0)
    radius = ((y - centre_y) / radius_y) ** 2 + ((z - centre_z) / radius_z) ** 2
    return lateral * (1.0 - radius).clamp(min=0.0) ** 2  # smooth, and none beyond the temporal lines


def head_labels(
    dist_out: torch.Tensor, coords: torch.Tensor, rng: np.random.Generator, generator: torch.Generator,
    dura_mm: float = 0.0, temporalis_mm: float = 0.0, late: np.random.Generator | None = None,
) -> torch.Tensor:
    """Generation labels of the head outside the brain (0 air where nothing is drawn).

    Args:
        dist_out: (I, J, K) mm from the brain mask at each output voxel (0 inside).
        coords: (3, I, J, K) template RAS mm of each output voxel.
        rng: draws the head's shape parameters.
        generator: draws the smooth thickness fields.
        dura_mm: thickness of a dura layer taking the outer part of the CSF rim, against the skull
            (all of the rim where the rim is thinner); 0 = none.
        temporalis_mm: greatest thickness of a temporalis muscle over each temporal lobe, under a
            thinner skull (``_temporal_weight``); 0 = none.
        late: draws the temporalis' placement (needed when ``temporalis_mm`` > 0); apart from ``rng``
            so that heads without it keep every earlier draw.

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

    muscle_in = None
    if temporalis_mm > 0:
        if late is None:
            raise ValueError("head_labels: a temporalis needs its own generator (late)")
        weight = _temporal_weight(coords, late)
        skull = skull * (1.0 - 0.6 * weight)  # the temporal squama is thin
        muscle_in = temporalis_mm * weight

    labels = torch.zeros(shape, dtype=torch.int64)
    skull_in, skull_out = rim, rim + skull
    scalp_in = skull_out if muscle_in is None else skull_out + muscle_in
    scalp_out = scalp_in + scalp
    middle = (dist_out - skull_in) / skull
    labels[(dist_out > 0) & (dist_out <= rim)] = LABEL["csf_rim"]
    if dura_mm > 0:
        labels[(dist_out > 0) & (dist_out > rim - dura_mm) & (dist_out <= rim)] = LABEL["dura"]
    labels[(dist_out > skull_in) & (dist_out <= skull_out)] = LABEL["bone"]
    labels[(middle > 0.5 - diploe / 2) & (middle < 0.5 + diploe / 2)] = LABEL["marrow"]
    labels[(dist_out > skull_out) & (dist_out <= scalp_in + scalp * (1 - fat_share))] = LABEL["muscle"]
    labels[(dist_out > scalp_in + scalp * (1 - fat_share)) & (dist_out <= scalp_out)] = LABEL["fat"]
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

    # Face in front of and below the frontal lobes; its cavities below.
    face = _ellipsoid(coords, (0.0, float(rng.uniform(40.0, 50.0)), float(rng.uniform(-60.0, -50.0))),
                      (float(rng.uniform(50.0, 62.0)), float(rng.uniform(45.0, 55.0)), float(rng.uniform(42.0, 52.0))))
    in_face = (face <= 1.0) & (labels == LABEL["air"]) & outside
    labels[in_face] = LABEL["soft_tissue"]
    labels[in_face & (face > 0.8)] = LABEL["fat"]
    if rng.random() < 0.15:  # the earlier, simpler face: one air sinus
        sinus_size = float(rng.uniform(0.6, 1.2))
        sinus = _ellipsoid(coords, (0.0, 52.0, -45.0), (16.0 * sinus_size, 14.0 * sinus_size, 14.0 * sinus_size))
        labels[in_face & (sinus <= 1.0)] = LABEL["air"]
    else:
        _face_cavities(labels, dist_out, coords, rng, generator)

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
