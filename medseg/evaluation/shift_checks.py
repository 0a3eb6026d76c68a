"""Shift checks of a brain-tissue model: how it holds up away from its training distribution.

One run (``run_checks``) applies a model folder through the public ``Predictor`` to a fixed,
seeded set of conditions and scores each against a reference (0 background, 1 CSF, 2 GM, 3 WM):

1. the bundled sample's test subjects (``data/brain-tissue/imagesTs`` + ``labelsTs``);
2. real T1 scans (``tests/models/real_scan_helpers.load_real_checks``; reference = 3-class intensity
   clustering inside a brain mask), each (a) whole head, skull on; also moved as (c) below, and resampled to
   ``ONE_MM`` isotropic (image linear as the 1 mm timing head, reference and mask label-wise): the issue's scan is a
   1 mm whole head; (b) skull-stripped (image * mask);
   (c) skull-stripped and rigidly moved (rotation about the brain centre, then a shift; image linear,
   reference and mask label-wise linear (``resample_labels``), on the scan's own grid); (d) 5 mm axial
   slices (slice-profile blur along the axis nearest S, then linear resampling to 5 mm along it;
   reference and mask: the label filling most of each thick voxel's profile; scored on the 5 mm grid);
   (c) and (d) also record ``dice_nearest_reference``, against references resampled by nearest neighbour
   (this module's definition before 2026-12-05), and (c) ``dice_stripped_prediction_moved``, the
   skull-stripped prediction moved with the scan (label-wise), the score of a perfectly pose-invariant
   model; (e) the moved brain written as an oblique DICOM series (the grid rotated about R around the
   brain centre, image linear) and read back, against the same moved brain as NIfTI: Dice per class
   between the two predictions after mapping the DICOM one (label-wise linear; ``agreement_nearest``:
   nearest) onto the NIfTI grid ("agreement"); two controls in the JSON: the moved brain as an
   axis-aligned DICOM series, and the oblique data as NIfTI (which isolates the DICOM reader from the
   oblique grid); (f) (e) on a 1 mm grid: the skull-stripped scan resampled to ``ONE_MM`` isotropic (image
   cubic, reference and mask label-wise), moved, and written as a 1 mm oblique DICOM series. The issue's
   scan is 1 mm; on a coarse grid the oblique re-gridding itself blurs thin CSF (ITK's 2 x 2 x 3 mm), so (e)
   understates what a 1 mm series keeps. Cubic upsampling makes no new detail, so (f) is optimistic
   by the detail a true 1 mm scan has and the upsampled one lacks;
3. synthetic volumes from the generator at 1 mm isotropic with seeds ``(424242, i)`` disjoint from the
   training stream and the validation volumes (``VALIDATION_SEED``), one kind per condition;
4. timing of a 1 mm whole head (the real scan resampled to 1 mm): read the NIfTI, predict, write the
   labels, with and without test-time augmentation.

Metrics (``score``), with the brain = the reference's (or mask's) non-zero voxels:

* Dice per class, ``2|P & R| / (|P| + |R|)`` (NaN when both are empty), and their mean;
* brain Dice: predicted foreground (any class) against the brain;
* outside mL: volume predicted as tissue outside the brain; far mL: the part of it more than
  ``FAR_OUTSIDE_MM`` from the brain (on skull, muscle, scalp), as against an outline a voxel or two off the mask's;
* ECE (``medseg.evaluation.calibration``, top-label, 15 bins) of the calibrated probabilities over all
  in-brain voxels ("all"), and over in-brain voxels at least ``BOUNDARY_MARGIN`` voxels from the
  reference's class boundaries ("away"), where the reference's own partial-volume noise is small;
* AUROC of the normalised entropy as a detector of voxel errors (``medseg.evaluation.uncertainty.
  error_auroc``) over all in-brain voxels, and over the "away" voxels;
* HD95 (mm, symmetric 95th-percentile Hausdorff distance) and normalised surface Dice at
  ``SURFACE_TOLERANCE_MM`` per class (``medseg.evaluation.metrics.score_labels``, MONAI), and their means.

Distance from a class boundary (``boundary_distance``): in voxel units (not mm, so a 5 mm grid is
judged in its own voxels), the Euclidean distance from a voxel's centre to the nearest centre of a voxel
of another reference class (background included, so the brain's edge is a boundary), minus 1/2: the
boundary surface lies halfway between two voxel centres. A voxel touching another class face-on is
0.5 from the boundary; ``away_from_boundaries(reference, 2)`` keeps voxels whose nearest other-class
voxel is at least 2.5 voxels away (two full voxels of their own class lie between them and the
boundary). The array's edge is not a boundary.

Seconds: per condition, ``Predictor.predict`` wall time on the volume in memory (for the DICOM rows,
reading the series as well); the timing rows read, predict and write. The predictor is warmed up by the
timing runs first (the ``auto`` engine's one-off export), so condition times are not charged for it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.evaluation.calibration import expected_calibration_error
from medseg.evaluation.metrics import score_labels
from medseg.evaluation.uncertainty import error_auroc
from medseg.types import Volume

CLASSES: tuple[int, ...] = (1, 2, 3)
CLASS_NAMES: tuple[str, ...] = ("CSF", "GM", "WM")
BOUNDARY_MARGIN = 2.0  # voxels between a voxel and the reference's class boundary for the "away" metrics
ECE_BINS = 15
SURFACE_TOLERANCE_MM = 2.0  # one voxel of the 2 mm network grid
FAR_OUTSIDE_MM = 5.0  # tissue further than this from the brain mask is non-brain content, not an outline's placement
FWHM_PER_SIGMA = 2.3548

# Condition settings (the protocol).
MOVE_DEGREES: tuple[float, float, float] = (11.0, -8.0, 14.0)  # about R, A, S
MOVE_SHIFT_MM: tuple[float, float, float] = (6.0, -6.0, 5.0)  # |shift| = 9.8 mm
THICK_SLICE_MM = 5.0
OBLIQUE_DEGREES = 17.0  # about R: an oblique axial series
OBLIQUE_MARGIN_MM = 12.0
SYNTH_SEED = 424_242
SYNTH_SHAPE: tuple[int, int, int] = (192, 224, 192)
SYNTH_SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)
SYNTH_ROTATION_DEG = 20.0
# (key, label, forced SynthParams fields); rotation is zero unless the kind is about rotation.
SYNTH_KINDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("t1-head", "T1 whole head", {"contrast": "t1", "whole_head": True, "thick_axis": -1}),
    ("t2-head", "T2 whole head", {"contrast": "t2", "whole_head": True, "thick_axis": -1}),
    ("pd-stripped", "PD skull-stripped", {"contrast": "pd", "whole_head": False, "thick_axis": -1}),
    ("t1-head-axial5mm", "T1 whole head, 5 mm axial",
     {"contrast": "t1", "whole_head": True, "thick_axis": 2, "slice_spacing_mm": THICK_SLICE_MM}),
    ("t1-head-rotated20", "T1 whole head, rotated 20° (about R)",
     {"contrast": "t1", "whole_head": True, "thick_axis": -1,
      "rotation": (math.radians(SYNTH_ROTATION_DEG), 0.0, 0.0)}),
    ("random-head", "arbitrary contrast, whole head", {"contrast": "random", "whole_head": True, "thick_axis": -1}),
)
TIMING_SPACING_MM = 1.0
ONE_MM = 1.0  # (f): the grid of the 1 mm oblique check

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Metric helpers (plain numpy, no I/O).


def dice(prediction: np.ndarray, reference: np.ndarray, label: int) -> float:
    """Dice of one label between two label arrays of the same shape; NaN when neither has it."""
    a, b = np.asarray(prediction) == label, np.asarray(reference) == label
    total = int(a.sum()) + int(b.sum())
    return math.nan if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def class_dice(prediction: np.ndarray, reference: np.ndarray, classes: Sequence[int] = CLASSES) -> dict[str, float]:
    """Dice per class (keys from ``CLASS_NAMES`` for classes 1..3, else ``str(label)``) and ``mean``."""
    names = dict(zip(CLASSES, CLASS_NAMES))
    scores = {names.get(c, str(c)): dice(prediction, reference, c) for c in classes}
    values = [v for v in scores.values() if not math.isnan(v)]
    scores["mean"] = float(np.mean(values)) if values else math.nan
    return scores


def brain_dice(prediction: np.ndarray, brain: np.ndarray) -> float:
    """Dice of the predicted foreground (any label > 0) against the brain mask."""
    return dice(np.asarray(prediction) > 0, np.asarray(brain, dtype=bool), True)


def outside_mask_ml(prediction: np.ndarray, brain: np.ndarray, spacing: Sequence[float]) -> float:
    """mL labelled as tissue (label > 0) outside the brain mask."""
    voxels = int(np.logical_and(np.asarray(prediction) > 0, ~np.asarray(brain, dtype=bool)).sum())
    return voxels * float(np.prod(spacing)) / 1000.0


def far_outside_mask_ml(prediction: np.ndarray, brain: np.ndarray, spacing: Sequence[float], *,
                        margin_mm: float = FAR_OUTSIDE_MM) -> float:
    """mL labelled as tissue more than ``margin_mm`` (centre to centre, in mm) from every brain-mask voxel.

    Separates tissue on the skull, muscle or scalp (the whole-head failure) from an outline placed a voxel or
    two off the mask's, where two masks' definitions of the outer CSF already differ.
    """
    outside = ~np.asarray(brain, dtype=bool)
    if outside.all():  # no brain: every tissue voxel is far from it (the transform needs a zero)
        return outside_mask_ml(prediction, brain, spacing)
    distance = ndimage.distance_transform_edt(outside, sampling=[float(v) for v in spacing])
    voxels = int(np.logical_and(np.asarray(prediction) > 0, distance > margin_mm).sum())
    return voxels * float(np.prod(spacing)) / 1000.0


def boundary_distance(reference: np.ndarray, classes: Sequence[int] = CLASSES) -> np.ndarray:
    """Distance (voxels) of each voxel of ``classes`` from the reference's nearest class boundary.

    See the module docstring: centre-to-centre Euclidean distance to the nearest voxel of another label,
    minus 0.5. Voxels of other labels (background) get NaN; a class with no other label anywhere, inf.

    Returns:
        float32 array of ``reference``'s shape.
    """
    reference = np.asarray(reference)
    result = np.full(reference.shape, np.nan, dtype=np.float32)
    inside = np.isin(reference, classes)
    if not inside.any():
        return result
    # Crop to the classes' box plus one voxel: outside it, a nearer non-class voxel always exists on the box's
    # shell (clamping a point to the box shortens every coordinate difference), so distances are unchanged
    # as long as the shell is not of the class itself. The array's own edge is not a boundary.
    box = tuple(
        slice(max(int(idx.min()) - 1, 0), min(int(idx.max()) + 2, n))
        for idx, n in zip(np.nonzero(inside), reference.shape)
    )
    part = reference[box]
    out = np.full(part.shape, np.nan, dtype=np.float32)
    for label in classes:
        region = part == label
        if not region.any():
            continue
        if region.all():
            out[region] = np.inf
            continue
        out[region] = ndimage.distance_transform_edt(region)[region] - 0.5
    result[box] = out
    return result


def away_from_boundaries(
    reference: np.ndarray, margin: float = BOUNDARY_MARGIN, classes: Sequence[int] = CLASSES
) -> np.ndarray:
    """Boolean mask of voxels of ``classes`` at least ``margin`` voxels from a class boundary."""
    distance = boundary_distance(reference, classes)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(distance, nan=-1.0, posinf=np.inf) >= margin


def confidence_metrics(
    probabilities: np.ndarray, uncertainty: np.ndarray, prediction: np.ndarray, reference: np.ndarray,
    brain: np.ndarray | None = None, margin: float = BOUNDARY_MARGIN,
) -> dict[str, float]:
    """ECE and error-detection AUROC over in-brain voxels and over those away from class boundaries.

    Args:
        probabilities: (C, I, J, K) calibrated probabilities (C = 4 with background).
        uncertainty: (I, J, K) normalised entropy.
        prediction: (I, J, K) predicted labels (errors = prediction != reference).
        reference: (I, J, K) reference labels.
        brain: in-brain voxels (default: reference > 0).
        margin: voxels from a class boundary for the "away" subset.

    Returns:
        ``ece_all``, ``ece_away``, ``auroc_all``, ``auroc_away``, ``error_rate_all``, ``away_fraction``
        (NaN where a subset is empty or has no errors / no correct voxels).
    """
    reference = np.asarray(reference)
    brain = reference > 0 if brain is None else np.asarray(brain, dtype=bool)
    away = away_from_boundaries(reference, margin) & brain
    errors = np.asarray(prediction) != reference
    result: dict[str, float] = {}
    for name, subset in (("all", brain), ("away", away)):
        count = int(subset.sum())
        if count == 0:
            result[f"ece_{name}"] = result[f"auroc_{name}"] = math.nan
            continue
        samples = np.ascontiguousarray(np.asarray(probabilities)[:, subset].T)
        labels = reference[subset].astype(np.int64)
        result[f"ece_{name}"] = expected_calibration_error(samples, labels, ECE_BINS)
        result[f"auroc_{name}"] = error_auroc(np.asarray(uncertainty)[subset], errors[subset])
        del samples
    count = int(brain.sum())
    result["error_rate_all"] = float(errors[brain].mean()) if count else math.nan
    result["away_fraction"] = float(away.sum() / count) if count else math.nan
    return result


def surface_metrics(labels: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> dict[str, Any]:
    """``hd95_mm`` and ``surface_dice`` per class name (plus ``mean``) of (I, J, K) labels vs the reference."""
    names = dict(zip(CLASSES, CLASS_NAMES))
    scores = score_labels(labels, reference, spacing, CLASSES, tolerance_mm=SURFACE_TOLERANCE_MM)
    result: dict[str, Any] = {}
    for key, attribute in (("hd95_mm", "hd95_mm"), ("surface_dice", "surface_dice")):
        values = {names[c]: float(getattr(scores[c], attribute)) for c in CLASSES}
        finite = [v for v in values.values() if math.isfinite(v)]
        values["mean"] = float(np.mean(finite)) if finite else math.nan
        result[key] = values
    return result


def score(
    prediction: Any, reference: np.ndarray, brain: np.ndarray, spacing: Sequence[float], *, confidence: bool = True,
) -> dict[str, Any]:
    """All metrics of one ``Prediction`` (labels, probabilities, uncertainty on the reference's grid)."""
    labels = np.asarray(prediction.labels.array)
    result: dict[str, Any] = {"dice": class_dice(labels, reference)}
    result["brain_dice"] = brain_dice(labels, brain)
    result["outside_ml"] = outside_mask_ml(labels, brain, spacing)
    result["far_outside_ml"] = far_outside_mask_ml(labels, brain, spacing)
    result.update(surface_metrics(labels, reference, spacing))
    if confidence:
        result.update(confidence_metrics(prediction.probabilities, prediction.uncertainty, labels, reference, brain))
    result["qc_flags"] = list(prediction.qc_flags)
    return result


# ---------------------------------------------------------------------------------------------
# Geometry helpers: everything is resampled by world coordinates (voxel -> RAS mm affines).


def resample(
    array: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: Sequence[int], *,
    order: int, world: np.ndarray | None = None, mode: str = "constant",
) -> np.ndarray:
    """``array`` (I, J, K) on ``affine`` sampled at the voxels of a target grid.

    Args:
        order: 1 linear (images), 0 nearest (labels and masks).
        world: optional 4x4 RAS map applied to the content: the output at world point y is the input at
            ``inv(world) @ y`` (so ``world`` moves the content).
        mode: scipy's padding mode (``"constant"``: 0 outside).
    """
    mapping = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    if world is not None:
        mapping = mapping @ np.linalg.inv(world)
    mapping = mapping @ np.asarray(target_affine, dtype=np.float64)
    source = np.asarray(array)
    dtype = source.dtype
    if order == 0:
        out = ndimage.affine_transform(source, mapping[:3, :3], mapping[:3, 3], output_shape=tuple(target_shape),
                                       order=0, mode=mode, cval=0)
        return out.astype(dtype, copy=False)
    out = ndimage.affine_transform(source.astype(np.float32, copy=False), mapping[:3, :3], mapping[:3, 3],
                                   output_shape=tuple(target_shape), order=order, mode=mode, cval=0.0)
    return out.astype(np.float32, copy=False)


def rotation_matrix(degrees: Sequence[float]) -> np.ndarray:
    """3x3 rotation about R, then A, then S (degrees)."""
    a, b, c = (math.radians(float(v)) for v in degrees)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def mask_centre(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """RAS mm of the mask's centroid."""
    index = np.array(np.nonzero(mask), dtype=np.float64).mean(axis=1)
    return (np.asarray(affine) @ np.append(index, 1.0))[:3]


def rigid_world(degrees: Sequence[float], shift_mm: Sequence[float], centre: np.ndarray) -> np.ndarray:
    """4x4 RAS map: rotate about ``centre``, then shift."""
    world = np.eye(4)
    rotation = rotation_matrix(degrees)
    world[:3, :3] = rotation
    world[:3, 3] = np.asarray(centre) - rotation @ np.asarray(centre) + np.asarray(shift_mm, dtype=np.float64)
    return world


def resample_labels(
    labels: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: Sequence[int], *,
    world: np.ndarray | None = None, mode: str = "constant", profile: tuple[int, float] | None = None,
    nearest: bool = False,
) -> np.ndarray:
    """A label map (I, J, K) sampled at a target grid's voxels, label-wise linear (or nearest).

    Label-wise linear: each label's indicator is resampled linearly (after an optional slice profile,
    ``(axis, sigma in voxels)``, a Gaussian along that axis) and every target voxel takes the label
    with the largest weight (ties: the smaller label); outside the source counts as label 0. Equal,
    voxel for voxel, to SimpleITK's ``sitkLabelLinear`` on the same geometry (tested); written here in
    numpy because the image and its reference must go through the same scipy geometry as ``resample``
    (no second library's physical-space conventions between them), and because SimpleITK has no
    slice-profile variant (each label's indicator blurred along the slice axis first, for thick
    slices). Nearest neighbour on a coarse grid moves boundaries by up to half a voxel at random (0.75
    mm on a 1.5 mm scan, 1.5 mm along a 3 mm axis) and picks the label at a thick voxel's centre rather
    than the one that fills it: measured on the real checks, a reference moved by nearest agrees with
    one rebuilt from the moved image at GM 0.899 / 0.792 (ROBEX / ITK), label-wise linear at 0.930 /
    0.825.
    """
    source = np.asarray(labels)
    if nearest:
        if profile is not None:
            raise ValueError("a slice profile needs label-wise linear resampling, not nearest")
        return resample(source, affine, target_affine, target_shape, order=0, world=world, mode=mode)
    values = np.unique(source)
    if values.size and values[0] != 0:
        values = np.concatenate([[0], values])
    best = np.zeros(tuple(target_shape), source.dtype)
    best_weight = np.full(tuple(target_shape), -np.inf, np.float32)
    for value in values:
        indicator = (source == value).astype(np.float32)
        if profile is not None:
            axis, sigma = profile
            indicator = ndimage.gaussian_filter1d(indicator, sigma, axis=axis, mode="constant", cval=0.0)
        if value == 0 and mode == "constant":
            # Outside the source is background: its weight is what the other labels leave.
            weight = 1.0 - resample(1.0 - indicator, affine, target_affine, target_shape, order=1, world=world,
                                    mode=mode)
        else:
            weight = resample(indicator, affine, target_affine, target_shape, order=1, world=world, mode=mode)
        better = weight > best_weight
        best[better] = value
        best_weight[better] = weight[better]
    return best


def move(
    image: np.ndarray, reference: np.ndarray, mask: np.ndarray, affine: np.ndarray,
    degrees: Sequence[float] = MOVE_DEGREES, shift_mm: Sequence[float] = MOVE_SHIFT_MM, *,
    nearest_reference: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (linear), reference and mask (label-wise linear, or nearest) rigidly moved about the mask's centre.

    All on the input's own grid; shapes (I, J, K).
    """
    world = rigid_world(degrees, shift_mm, mask_centre(mask, affine))
    shape = image.shape
    return (resample(image, affine, affine, shape, order=1, world=world),
            resample_labels(reference, affine, affine, shape, world=world, nearest=nearest_reference),
            resample_labels(mask.astype(np.uint8), affine, affine, shape, world=world,
                            nearest=nearest_reference).astype(bool))


def axis_nearest(affine: np.ndarray, world_axis: int) -> int:
    """The voxel axis whose direction is nearest the world axis (0 R, 1 A, 2 S)."""
    directions = np.asarray(affine)[:3, :3] / np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    return int(np.argmax(np.abs(directions[world_axis])))


def thick_slices(
    image: np.ndarray, reference: np.ndarray, mask: np.ndarray, affine: np.ndarray,
    thickness_mm: float = THICK_SLICE_MM, world_axis: int = 2, *, nearest_reference: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A thick-slice acquisition along the voxel axis nearest ``world_axis`` (2 = S: axial slices).

    Slice profile: a Gaussian of FWHM ``thickness_mm`` along that axis; then linear resampling to
    ``thickness_mm`` spacing over the same extent (slices start at the grid's first edge). Reference and
    mask: the label that fills most of each thick voxel's slice profile (``resample_labels`` with the
    same profile), or with ``nearest_reference`` the label at its centre.

    Returns:
        (image, reference, mask, affine) on the thick-slice grid.
    """
    axis = axis_nearest(affine, world_axis)
    spacing = float(np.linalg.norm(np.asarray(affine)[:3, axis]))
    factor = thickness_mm / spacing
    blurred = ndimage.gaussian_filter1d(image.astype(np.float32), factor / FWHM_PER_SIGMA, axis=axis,
                                        mode="constant", cval=0.0)
    shape = list(image.shape)
    shape[axis] = max(int(round(image.shape[axis] / factor)), 1)
    scale = np.eye(4)
    scale[axis, axis] = factor
    scale[axis, 3] = 0.5 * factor - 0.5  # new voxel j's centre at old (j + 0.5) * factor - 0.5
    new_affine = np.asarray(affine, dtype=np.float64) @ scale
    profile = None if nearest_reference else (axis, factor / FWHM_PER_SIGMA)
    return (resample(blurred, affine, new_affine, shape, order=1, mode="nearest"),
            resample_labels(reference, affine, new_affine, shape, mode="nearest", profile=profile,
                            nearest=nearest_reference),
            resample_labels(mask.astype(np.uint8), affine, new_affine, shape, mode="nearest", profile=profile,
                            nearest=nearest_reference).astype(bool),
            new_affine)


def oblique_grid(
    affine: np.ndarray, mask: np.ndarray, degrees: float = OBLIQUE_DEGREES, margin_mm: float = OBLIQUE_MARGIN_MM,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A grid with ``affine``'s spacing whose axes are rotated ``degrees`` about R, covering the mask + margin."""
    rotation = rotation_matrix((degrees, 0.0, 0.0))
    matrix = rotation @ np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    points = np.asarray(affine)[:3, :3] @ np.array(np.nonzero(mask), dtype=np.float64) + np.asarray(affine)[:3, 3:4]
    index = np.linalg.inv(matrix) @ points  # mask voxel centres in the new axes (origin at RAS 0)
    low = index.min(axis=1) - margin_mm / spacing
    high = index.max(axis=1) + margin_mm / spacing
    shape = tuple(int(math.ceil(top - bottom)) + 1 for bottom, top in zip(low, high))
    new_affine = np.eye(4)
    new_affine[:3, :3] = matrix
    new_affine[:3, 3] = matrix @ low
    return new_affine, shape


def agreement(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """Dice per class between two predictions on one grid, and their mean."""
    return class_dice(first, second)


# ---------------------------------------------------------------------------------------------
# The run.


@dataclass
class CheckSettings:
    """What a run does (recorded in checks.json)."""

    quick: bool = False
    tta: bool | None = None  # None: the model card's default (inference.tta); the JSON records what ran
    synth_volumes: int = 2
    real_scans: tuple[str, ...] = ()  # empty: all of medseg.data.real_scans.SOURCES
    sample_dir: str = "data/brain-tissue"
    boundary_margin_voxels: float = BOUNDARY_MARGIN
    surface_tolerance_mm: float = SURFACE_TOLERANCE_MM
    ece_bins: int = ECE_BINS
    move_degrees: tuple[float, ...] = MOVE_DEGREES
    move_shift_mm: tuple[float, ...] = MOVE_SHIFT_MM
    thick_slice_mm: float = THICK_SLICE_MM
    oblique_degrees: float = OBLIQUE_DEGREES
    synth_seed: int = SYNTH_SEED
    synth_shape: tuple[int, ...] = SYNTH_SHAPE
    synth_spacing: tuple[float, ...] = SYNTH_SPACING
    synth_kinds: dict[str, Any] = field(
        default_factory=lambda: {key: {"label": label, "forced": forced} for key, label, forced in SYNTH_KINDS})


def _timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``function(*args, **kwargs)`` and its wall time in seconds."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def _row(
    condition: str, group: str, metrics: dict[str, Any], seconds: float, **extra: Any,
) -> dict[str, Any]:
    return {"condition": condition, "group": group, **metrics, "seconds": seconds, **extra}


def _mean_rows(rows: list[dict[str, Any]], condition: str, group: str) -> dict[str, Any]:
    """One row of means over volumes (numbers only; per-volume rows kept under ``volumes``)."""

    def mean(values: list[float]) -> float:
        finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return float(np.mean(finite)) if finite else math.nan

    merged: dict[str, Any] = {"condition": condition, "group": group, "n": len(rows)}
    for key in ("dice", "hd95_mm", "surface_dice"):
        if key in rows[0]:
            merged[key] = {k: mean([r[key][k] for r in rows]) for k in rows[0][key]}
    for key, value in rows[0].items():
        if key not in merged and isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = mean([r[key] for r in rows])
    merged["volumes"] = rows
    return merged


def _write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.asarray(array, dtype=np.float32), np.asarray(affine, dtype=np.float64)),
                 str(path))
    return path


def _dicom_path(
    predictor: Any, image: np.ndarray, affine: np.ndarray, folder: Path, description: str,
) -> tuple[Any, Volume, float]:
    """Write ``image`` as an MR DICOM series, read it back with ``read_scan`` and predict: (prediction, volume, s)."""
    from medseg.io import read_scan
    from medseg.io.dicom_export import write_dicom_series

    slope = max(float(np.abs(image).max()), 1e-6) / 30000.0
    write_dicom_series(Volume(array=image[None].astype(np.float32), affine=affine), folder, modality="MR",
                       series_description=description, rescale_slope=slope)
    start = time.perf_counter()
    volume = read_scan(folder)
    prediction = predictor.predict(volume)
    return prediction, volume, time.perf_counter() - start


def _to_grid(labels: Any, target_affine: np.ndarray, target_shape: Sequence[int], *,
             nearest: bool = False) -> np.ndarray:
    """A LabelVolume mapped onto a target grid (label-wise linear, or nearest)."""
    return resample_labels(np.asarray(labels.array), labels.affine, target_affine, target_shape, nearest=nearest)


def real_scan_rows(predictor: Any, check: dict[str, Any], settings: CheckSettings, log: Log) -> list[dict[str, Any]]:
    """Rows (a)-(f) of one real scan (see the module docstring)."""
    name = check["name"]
    volume: Volume = check["volume"]
    affine = np.asarray(volume.affine, dtype=np.float64)
    image = np.asarray(check["image"], dtype=np.float32)
    mask = np.asarray(check["mask"], dtype=bool)
    reference = np.asarray(check["reference"], dtype=np.uint8)
    spacing = volume.spacing
    group = f"real: {name}"
    rows = []

    log(f"{name}: whole head")
    prediction, seconds = _timed(predictor.predict, volume)
    rows.append(_row(f"{name}: whole head, skull on", group, score(prediction, reference, mask, spacing), seconds))
    del prediction

    log(f"{name}: whole head, moved")
    head_image, head_reference, head_mask = move(image, reference, mask, affine, settings.move_degrees,
                                                 settings.move_shift_mm)
    prediction, seconds = _timed(predictor.predict, volume.with_array(head_image[None]))
    degrees = "/".join(f"{d:g}" for d in settings.move_degrees)
    rows.append(_row(f"{name}: whole head, skull on, moved {degrees}°", group,
                     score(prediction, head_reference, head_mask, spacing), seconds))
    del prediction, head_image, head_reference, head_mask

    log(f"{name}: whole head at 1 mm")
    fine_affine, fine_shape = isotropic_grid(affine, image.shape, ONE_MM)
    fine_image = resample(image, affine, fine_affine, fine_shape, order=1, mode="nearest")
    prediction, seconds = _timed(predictor.predict, Volume(array=fine_image[None], affine=fine_affine,
                                                           channel_names=volume.channel_names))
    fine_mask = resample_labels(mask.astype(np.uint8), affine, fine_affine, fine_shape).astype(bool)
    rows.append(_row(f"{name}: whole head, skull on, at 1 mm", group,
                     score(prediction, resample_labels(reference, affine, fine_affine, fine_shape), fine_mask,
                           (ONE_MM,) * 3), seconds))
    del prediction, fine_image, fine_mask

    log(f"{name}: skull-stripped")
    stripped = image * mask
    prediction, seconds = _timed(predictor.predict, volume.with_array(stripped[None]))
    rows.append(_row(f"{name}: skull-stripped", group, score(prediction, reference, mask, spacing), seconds))
    stripped_labels = np.asarray(prediction.labels.array)
    del prediction

    log(f"{name}: moved")
    moved_image, moved_reference, moved_mask = move(stripped, reference, mask, affine, settings.move_degrees,
                                                    settings.move_shift_mm)
    motion = rigid_world(settings.move_degrees, settings.move_shift_mm, mask_centre(mask, affine))
    moved_volume = Volume(array=moved_image[None], affine=affine, channel_names=volume.channel_names)
    moved_prediction, seconds = _timed(predictor.predict, moved_volume)
    shift = float(np.linalg.norm(settings.move_shift_mm))
    nearest_moved_reference = resample_labels(reference, affine, affine, moved_image.shape, world=motion,
                                              nearest=True)
    rows.append(_row(
        f"{name}: stripped, moved {degrees}°, {shift:.0f} mm", group,
        score(moved_prediction, moved_reference, moved_mask, spacing), seconds,
        mask_kept=float(moved_mask.sum() / max(mask.sum(), 1)),
        dice_nearest_reference=class_dice(np.asarray(moved_prediction.labels.array), nearest_moved_reference),
        # What a model that moved its skull-stripped answer with the scan would score: the loss below it is
        # the model's own, the rest the scan's.
        dice_stripped_prediction_moved=class_dice(
            resample_labels(stripped_labels, affine, affine, moved_image.shape, world=motion),
            moved_reference),
    ))
    del nearest_moved_reference, stripped_labels

    log(f"{name}: {settings.thick_slice_mm:g} mm axial")
    thick_image, thick_reference, thick_mask, thick_affine = thick_slices(stripped, reference, mask, affine,
                                                                          settings.thick_slice_mm)
    thick_volume = Volume(array=thick_image[None], affine=thick_affine, channel_names=volume.channel_names)
    prediction, seconds = _timed(predictor.predict, thick_volume)
    nearest_thick_reference = resample_labels(reference, affine, thick_affine, thick_image.shape, mode="nearest",
                                              nearest=True)
    rows.append(_row(
        f"{name}: stripped, {settings.thick_slice_mm:g} mm axial", group,
        score(prediction, thick_reference, thick_mask, thick_volume.spacing), seconds,
        grid_shape=list(thick_image.shape), grid_spacing=list(thick_volume.spacing),
        dice_nearest_reference=class_dice(np.asarray(prediction.labels.array), nearest_thick_reference),
    ))
    del prediction

    log(f"{name}: oblique DICOM vs NIfTI")
    moved_labels = np.asarray(moved_prediction.labels.array)
    shape = moved_image.shape
    with tempfile.TemporaryDirectory(prefix="medseg-shift-") as temporary:
        folder = Path(temporary)
        from medseg.io import read_scan

        start = time.perf_counter()
        nifti_volume = read_scan(_write_nifti(moved_image, affine, folder / "moved.nii.gz"))
        nifti_prediction = predictor.predict(nifti_volume)
        nifti_seconds = time.perf_counter() - start
        nifti_labels = _to_grid(nifti_prediction.labels, affine, shape)
        del nifti_prediction

        axial_prediction, _, axial_seconds = _dicom_path(predictor, moved_image, affine, folder / "axial", "axial")
        axial_labels = _to_grid(axial_prediction.labels, affine, shape)
        del axial_prediction

        oblique_affine, oblique_shape = oblique_grid(affine, moved_mask, settings.oblique_degrees)
        oblique_image = resample(moved_image, affine, oblique_affine, oblique_shape, order=1)
        oblique_prediction, _, oblique_seconds = _dicom_path(predictor, oblique_image, oblique_affine,
                                                             folder / "oblique", "oblique")
        oblique_native = np.asarray(oblique_prediction.labels.array)
        oblique_dicom_affine = oblique_prediction.labels.affine
        oblique_labels = _to_grid(oblique_prediction.labels, affine, shape)
        oblique_labels_nearest = _to_grid(oblique_prediction.labels, affine, shape, nearest=True)
        del oblique_prediction

        oblique_nifti = predictor.predict(read_scan(_write_nifti(oblique_image, oblique_affine,
                                                                 folder / "oblique.nii.gz")))
        oblique_nifti_labels = _to_grid(oblique_nifti.labels, oblique_dicom_affine, oblique_native.shape)
        del oblique_nifti

    oblique_vs_nifti = agreement(oblique_labels, nifti_labels)
    rows.append({
        "condition": f"{name}: moved, oblique {settings.oblique_degrees:g}° DICOM vs NIfTI", "group": group,
        "dice": class_dice(oblique_labels, moved_reference),
        "brain_dice": brain_dice(oblique_labels, moved_mask),
        "outside_ml": outside_mask_ml(oblique_labels, moved_mask, spacing),
        "far_outside_ml": far_outside_mask_ml(oblique_labels, moved_mask, spacing),
        "agreement": oblique_vs_nifti["mean"],
        "agreement_per_class": oblique_vs_nifti,
        "agreement_nearest": agreement(oblique_labels_nearest, nifti_labels)["mean"],
        "controls": {
            "nifti_read_vs_in_memory": agreement(nifti_labels, moved_labels),
            "axial_dicom_vs_nifti": agreement(axial_labels, nifti_labels),
            "oblique_dicom_vs_oblique_nifti": agreement(oblique_native, oblique_nifti_labels),
            "nifti_dice_vs_reference": class_dice(nifti_labels, moved_reference),
        },
        "oblique_grid": {"shape": list(oblique_shape), "affine": np.round(oblique_affine, 4).tolist()},
        "seconds": oblique_seconds,
        "seconds_nifti": nifti_seconds,
        "seconds_axial_dicom": axial_seconds,
    })
    del moved_prediction
    rows.append(one_mm_oblique_row(predictor, check, stripped, settings, log))
    return rows


def one_mm_oblique_row(predictor: Any, check: dict[str, Any], stripped: np.ndarray, settings: CheckSettings,
                       log: Log) -> dict[str, Any]:
    """Row (f): the moved skull-stripped brain at 1 mm, oblique DICOM series vs the same data in memory."""
    name = check["name"]
    affine = np.asarray(check["volume"].affine, dtype=np.float64)
    log(f"{name}: 1 mm, oblique DICOM vs NIfTI")
    fine_affine, fine_shape = isotropic_grid(affine, stripped.shape, ONE_MM)
    fine_image = np.maximum(resample(stripped, affine, fine_affine, fine_shape, order=3), 0.0)
    fine_reference = resample_labels(np.asarray(check["reference"], np.uint8), affine, fine_affine, fine_shape)
    fine_mask = resample_labels(np.asarray(check["mask"], np.uint8), affine, fine_affine, fine_shape).astype(bool)
    moved_image, moved_reference, moved_mask = move(fine_image, fine_reference, fine_mask, fine_affine,
                                                    settings.move_degrees, settings.move_shift_mm)
    del fine_image, fine_reference, fine_mask
    channels = check["volume"].channel_names
    nifti_labels = np.asarray(predictor.predict(
        Volume(array=moved_image[None], affine=fine_affine, channel_names=channels)).labels.array)
    oblique_affine, oblique_shape = oblique_grid(fine_affine, moved_mask, settings.oblique_degrees)
    oblique_image = resample(moved_image, fine_affine, oblique_affine, oblique_shape, order=1)
    with tempfile.TemporaryDirectory(prefix="medseg-shift-") as temporary:
        oblique_prediction, _, seconds = _dicom_path(predictor, oblique_image, oblique_affine,
                                                     Path(temporary) / "oblique-1mm", "oblique 1 mm")
    oblique_labels = _to_grid(oblique_prediction.labels, fine_affine, moved_image.shape)
    del oblique_prediction, oblique_image
    oblique_vs_nifti = agreement(oblique_labels, nifti_labels)
    return {
        "condition": f"{name}: moved, 1 mm, oblique {settings.oblique_degrees:g}° DICOM vs NIfTI",
        "group": f"real: {name}",
        "dice": class_dice(oblique_labels, moved_reference),
        "brain_dice": brain_dice(oblique_labels, moved_mask),
        "outside_ml": outside_mask_ml(oblique_labels, moved_mask, (ONE_MM,) * 3),
        "far_outside_ml": far_outside_mask_ml(oblique_labels, moved_mask, (ONE_MM,) * 3),
        "agreement": oblique_vs_nifti["mean"],
        "agreement_per_class": oblique_vs_nifti,
        "controls": {"nifti_dice_vs_reference": class_dice(nifti_labels, moved_reference)},
        "grid": {"shape": list(moved_image.shape), "spacing_mm": ONE_MM, "oblique_shape": list(oblique_shape)},
        "seconds": seconds,
    }


def sample_rows(predictor: Any, sample_dir: Path, log: Log) -> list[dict[str, Any]]:
    """The bundled sample's test subjects, one row (means) with the subjects under ``volumes``."""
    from medseg.io import read_labels, read_scan

    images = sorted((sample_dir / "imagesTs").glob("*.nii*"))
    if not images:
        raise FileNotFoundError(
            f"{sample_dir}/imagesTs holds no scans: build the sample with "
            f"`medseg sample datasets/brain-tissue.yaml --out {sample_dir}`"
        )
    rows = []
    for path in images:
        log(f"sample: {path.name}")
        start = time.perf_counter()
        volume = read_scan(path)
        prediction = predictor.predict(volume)
        seconds = time.perf_counter() - start
        reference = read_labels(sample_dir / "labelsTs" / path.name, reference=volume).array.astype(np.uint8)
        rows.append(_row(path.name, "sample", score(prediction, reference, reference > 0, volume.spacing), seconds))
    return [_mean_rows(rows, f"sample test subjects ({', '.join(p.name.split('.')[0] for p in images)})",
                       "sample")]


def synth_rows(predictor: Any, settings: CheckSettings, log: Log) -> list[dict[str, Any]]:
    """One row per synthetic kind (means over ``settings.synth_volumes`` volumes)."""
    import hashlib

    from medseg.config import SynthConfig
    from medseg.data.synth.generator import synthesize
    from medseg.data.synth.params import draw_params
    from medseg.data.synth.source import load_synth_source

    source = load_synth_source()
    config = SynthConfig()
    rows = []
    for kind_index, (key, label, forced) in enumerate(SYNTH_KINDS):
        forced = {"rotation": (0.0, 0.0, 0.0), **forced}
        volumes = []
        for index in range(settings.synth_volumes):
            seed = (settings.synth_seed, kind_index * 100 + index)
            params = draw_params(config, seed, **forced)
            log(f"synth {key} #{index}: generating")
            (image, labels, affine), generate_seconds = _timed(
                synthesize, source, params, settings.synth_shape, settings.synth_spacing)
            image_array = image.numpy()
            reference = labels.numpy().astype(np.uint8)
            digest = hashlib.sha256(np.ascontiguousarray(image_array).tobytes()).hexdigest()[:16]
            volume = Volume(array=image_array, affine=np.asarray(affine, dtype=np.float64), channel_names=("T1",))
            log(f"synth {key} #{index}: predicting")
            prediction, seconds = _timed(predictor.predict, volume)
            row = _row(f"{key} #{index}", f"synth: {key}", score(prediction, reference, reference > 0,
                                                                   volume.spacing), seconds)
            row.update(seed=list(seed), params=asdict(params), image_sha256_16=digest,
                       generate_seconds=generate_seconds)
            volumes.append(row)
            del prediction, image, image_array, volume
        rows.append(_mean_rows(volumes, f"synthetic {label} (1 mm, n={len(volumes)})", f"synth: {key}"))
    return rows


def write_one_mm_head(check: dict[str, Any], path: Path) -> Path:
    """The real scan of ``check`` resampled (linear) to ``TIMING_SPACING_MM`` isotropic, same field of view, as NIfTI."""
    volume: Volume = check["volume"]
    affine = np.asarray(volume.affine, dtype=np.float64)
    new_affine, shape = isotropic_grid(affine, volume.spatial_shape, TIMING_SPACING_MM)
    image = resample(np.asarray(check["image"], np.float32), affine, new_affine, shape, order=1, mode="nearest")
    return _write_nifti(image, new_affine, path)


def isotropic_grid(affine: np.ndarray, shape: Sequence[int], spacing_mm: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """The grid of the same field of view and axes as (``affine``, ``shape``) at ``spacing_mm`` isotropic."""
    affine = np.asarray(affine, dtype=np.float64)
    factor = np.linalg.norm(affine[:3, :3], axis=0) / spacing_mm
    new_shape = tuple(int(round(n * f)) for n, f in zip(shape, factor))
    scale = np.diag([*(1.0 / factor), 1.0])
    scale[:3, 3] = 0.5 / factor - 0.5  # same field of view: new voxel centres inside the old edges
    return affine @ scale, new_shape


def _nifti_shape(path: Path) -> tuple[int, ...]:
    import nibabel

    return tuple(int(n) for n in nibabel.load(str(path)).shape[:3])


def timing_rows(model_dir: Path, check: dict[str, Any], tta_settings: Sequence[bool], log: Log) -> tuple[
        list[dict[str, Any]], dict[bool, Any]]:
    """A 1 mm whole head (the real scan resampled to 1 mm, linear): read NIfTI + predict + write labels.

    Each TTA setting runs three times on one Predictor: ``seconds`` is the faster of the two warm runs (the
    CPU is shared), ``seconds_first`` the first (which pays any one-off engine export). Returns the rows and
    the warm predictors.
    """
    from medseg.inference.predictor import Predictor
    from medseg.io import read_scan, write_labels

    rows, predictors = [], {}
    with tempfile.TemporaryDirectory(prefix="medseg-timing-") as temporary:
        path = write_one_mm_head(check, Path(temporary) / "head_1mm.nii.gz")
        shape = _nifti_shape(path)
        for tta in tta_settings:
            predictor, load_seconds = _timed(Predictor.from_model, model_dir, tta=tta)
            runs = []
            for attempt in range(3):
                log(f"timing: 1 mm whole head, tta={tta}, run {attempt + 1}")
                start = time.perf_counter()
                scan = read_scan(path)
                prediction = predictor.predict(scan)
                write_labels(prediction.labels, Path(temporary) / f"labels_{tta}_{attempt}.nii.gz", reference=scan)
                runs.append({"seconds": time.perf_counter() - start, "stages": dict(prediction.timings)})
                del prediction, scan
            rows.append({
                "condition": f"timing: {check['name']} at 1 mm, whole head "
                             f"({f'TTA, {len(predictor.tta_flips)} passes' if tta else 'no TTA'})",
                "group": "timing", "tta": tta, "shape": list(shape),
                "seconds": min(run["seconds"] for run in runs[1:]), "seconds_first": runs[0]["seconds"],
                "runs": runs,
                "model_load_seconds": load_seconds,
            })
            predictors[tta] = predictor
    return rows, predictors


def _git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg()), "nice": os.nice(0),
        "machine": platform.machine(),
    }


def run_checks(
    model_dir: str | Path, settings: CheckSettings, *, repo: Path, log: Log = lambda message: None,
) -> dict[str, Any]:
    """Run every condition on ``model_dir``; returns the JSON-able results (see the module docstring)."""
    import sys

    import torch

    torch.manual_seed(0)
    np.random.seed(0)
    model_dir = Path(model_dir).resolve()
    started = time.perf_counter()
    helpers = repo / "tests" / "models"
    if str(helpers) not in sys.path:
        sys.path.insert(0, str(helpers))
    from real_scan_helpers import load_real_checks  # the test helper that builds the real-scan checks

    log("loading the real-scan checks")
    checks = load_real_checks(names=settings.real_scans or None)
    timing_check = next((c for c in checks if c["name"] == "robex-t1"), checks[0])
    if settings.tta is None:
        from medseg.inference.model_card import CARD_FILE, read_card

        settings = replace(settings, tta=read_card(model_dir / CARD_FILE).tta)
    tta_settings = (settings.tta, not settings.tta)  # the run's own setting first, kept warm for the conditions
    timing, predictors = timing_rows(model_dir, timing_check, tta_settings, log)
    predictor = predictors[settings.tta]
    predictors.clear()

    rows: list[dict[str, Any]] = []
    sample_dir = Path(settings.sample_dir)
    if not sample_dir.is_absolute():
        sample_dir = repo / sample_dir
    rows += sample_rows(predictor, sample_dir, log)
    for check in checks:
        rows += real_scan_rows(predictor, check, settings, log)
    rows += synth_rows(predictor, settings, log)
    rows += sorted(timing, key=lambda row: row["tta"])

    return {
        "format": "medseg-shift-checks/1",
        "model_dir": str(model_dir),
        "model": {
            "weights_sha256": _file_sha256(model_dir / "weights.pt"),
            "temperature": float(predictor.temperature),
            "class_names": list(predictor.class_names),
            "normalize": predictor.config.transforms.normalize,
            "spacing_mm": list(predictor.config.transforms.spacing),
        },
        "git_commit": _git_commit(repo),
        "settings": _jsonable(asdict(settings)),
        "environment": _environment(),
        "real_scans": [{"name": c["name"], "description": c["description"], "shape": list(c["image"].shape),
                        "spacing_mm": list(c["spacing"]), "mask_volume_ml": c["mask_volume_ml"]} for c in checks],
        "rows": _jsonable(rows),
        "total_seconds": time.perf_counter() - started,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---------------------------------------------------------------------------------------------
# Report.

COLUMNS: tuple[tuple[str, str], ...] = (
    ("CSF", "CSF"), ("GM", "GM"), ("WM", "WM"), ("mean", "mean"), ("brain_dice", "brain Dice"),
    ("outside_ml", "outside mL"), ("far_outside_ml", "far mL"), ("ece_away", "ECE away"), ("ece_all", "ECE all"),
    ("auroc_all", "AUROC"), ("auroc_away", "AUROC away"), ("hd95_mean", "HD95 mm"), ("nsd_mean", "NSD"),
    ("agreement", "agreement"),
    ("seconds", "s"),
)


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in ("outside_ml", "far_outside_ml"):
        return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
    if key in ("seconds", "hd95_mean"):
        return f"{value:.1f}"
    if key.startswith("ece"):
        return f"{value:.3f}"
    return f"{value:.2f}"


CONTROL_TITLES = {  # the control agreements of the DICOM rows, as checks.md names them
    "nifti_read_vs_in_memory": "NIfTI read back vs in memory",
    "axial_dicom_vs_nifti": "axial DICOM vs NIfTI",
    "oblique_dicom_vs_oblique_nifti": "oblique DICOM vs the same oblique data as NIfTI",
    "nifti_dice_vs_reference": "NIfTI path vs reference: mean Dice",
}


def markdown_table(results: dict[str, Any]) -> str:
    """checks.md: one table (condition rows, metric columns) and how to read it."""
    header = "| condition | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in results["rows"]:
        values = {**row.get("dice", {}), **{k: v for k, v in row.items() if k != "dice"},
                  "hd95_mean": row.get("hd95_mm", {}).get("mean"), "nsd_mean": row.get("surface_dice", {}).get("mean")}
        cells = [_cell(key, values.get(key)) for key, _ in COLUMNS]
        lines.append(f"| {row['condition']} | " + " | ".join(cells) + " |")
    for row in results["rows"]:
        controls = row.get("controls")
        if controls:
            parts = [f"{CONTROL_TITLES[key]} {value['mean']:.3f}" for key, value in controls.items()]
            lines.append(f"\n{row['condition']}, controls (mean class agreement or Dice): " + "; ".join(parts) + ".")
    settings = results["settings"]
    env = results["environment"]
    notes = [
        f"# Shift checks: `{results['model_dir']}`",
        "",
        f"git commit {results['git_commit']}; weights sha256 {results['model']['weights_sha256'][:16]}…; "
        f"temperature {results['model']['temperature']:.3f}; TTA {'on' if settings['tta'] else 'off'}"
        f"{'; quick' if settings['quick'] else ''}; {env['cpus']} CPUs, torch threads {env['torch_threads']}, "
        f"load average at start {env['load_average_at_start'][0]:.1f}; whole run {results['total_seconds']:.0f} s.",
        "",
        *lines,
        "",
        "How to read it (definitions in `medseg/evaluation/shift_checks.py`):",
        "- CSF/GM/WM/mean: Dice against the reference (real scans: 3-class intensity clustering inside the brain "
        "mask; synthetic: the generator's labels). Synthetic rows and the sample row are means over volumes.",
        "- brain Dice: predicted tissue (any class) vs the brain mask; outside mL: tissue predicted outside it; far "
        f"mL: the part of it more than {FAR_OUTSIDE_MM:g} mm from the mask (skull, muscle, scalp).",
        f"- ECE (top-label, {settings['ece_bins']} bins) of the calibrated probabilities: 'away' = in-brain voxels "
        f">= {settings['boundary_margin_voxels']:g} voxels from the reference's class boundary surface (the nearest "
        f"voxel of another class >= {settings['boundary_margin_voxels'] + 0.5:g} voxels away, centre to centre; "
        "`away_fraction` in checks.json says how many that leaves); 'all' = every "
        "in-brain voxel. AUROC: normalised entropy as a detector of voxel errors, over all in-brain voxels (and "
        "the 'away' ones).",
        f"- HD95 mm / NSD: means over CSF, GM and WM of the symmetric 95th-percentile Hausdorff distance and the "
        f"normalised surface Dice at {SURFACE_TOLERANCE_MM:g} mm (per class in checks.json).",
        "- DICOM rows: Dice columns are the DICOM path against the reference; agreement = mean class Dice between "
        "the DICOM and NIfTI predictions on the NIfTI grid (controls in checks.json).",
        "- s: predict wall time on the volume in memory (DICOM: read + predict; timing rows: read + predict + write, "
        "faster of two warm runs). The CPU is shared with other work: times are upper bounds.",
    ]
    return "\n".join(notes) + "\n"


def write_outputs(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """OUT_DIR/checks.json and OUT_DIR/checks.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "checks.json", out / "checks.md"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown_table(results), encoding="utf-8")
    return json_path, md_path
