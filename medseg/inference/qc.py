"""Quality-control flags for a radiologist's triage, against ranges seen in the training data.

The reference is computed from the TRAINING split only (``export_model_folder``) and stored
in the model card. Each flag is one readable line that starts with a fixed key:

* ``"empty prediction"``: no foreground voxel at all.
* ``"volume out of range: ..."``: a class volume (mL) outside the training range, widened to
  ``[min * (1 - VOLUME_MARGIN), max * (1 + VOLUME_MARGIN)]``.
* ``"high uncertainty: ..."``: the mean normalised predictive entropy inside the predicted
  structures exceeds ``uncertainty_threshold`` (default 0.5: on average as unsure as a
  50/50 choice between two classes of a four-class model, since H(0.5, 0.5) / log 4 = 0.5).
* ``"spacing out of range: ..."``: voxel size (mm, per RAS axis) outside
  ``[min / GEOMETRY_FACTOR, max * GEOMETRY_FACTOR]`` of the training scans.
* ``"shape out of range: ..."``: field of view in mm (voxels x spacing, per RAS axis) outside
  ``[min / GEOMETRY_FACTOR, max * GEOMETRY_FACTOR]`` of the training scans; the stored
  ``shape`` range (voxels per RAS axis) is for reading only.
* ``"intensity out of range: ..."``: a channel's 1st or 99th intensity percentile outside the
  training range of that percentile, widened by ``INTENSITY_MARGIN`` times the typical
  p1..p99 span. Only for models whose inputs have physical units (``normalize: range``, e.g. CT in
  HU): MR intensities are arbitrary, so a scale-free model keeps no intensity ranges.
* ``"tissue outside the main structure: ..."``: predicted foreground outside the largest connected
  structure above ``outside_ml_limit`` (models that find one structure, e.g. a brain).
* ``"low class contrast: ..."``: the input's intensities barely separate two predicted classes
  (d' below ``min_class_separation``).
* ``"passes disagree: ..."``: more than ``tta_disagreement_limit`` of the predicted voxels change
  class between the mirrored test-time-augmentation passes.

Axes are compared in RAS order (``nibabel.orientations.io_orientation``), so a sagittal and an
axial acquisition of the same grid agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel.orientations
import numpy as np

from medseg.errors import InputError
from medseg.inference.qc_content import minimum_class_separation, outside_main_structure_ml
from medseg.types import Volume, spacing_from_affine

VOLUME_MARGIN = 0.5
GEOMETRY_FACTOR = 1.5
INTENSITY_MARGIN = 0.25
UNCERTAINTY_THRESHOLD = 0.5
OUTSIDE_ML_LIMIT = 5.0
TTA_DISAGREEMENT_LIMIT = 0.15
PERCENTILE_SAMPLES = 1_000_000  # voxels per channel used for the percentiles (strided subset)
AXES = ("R", "A", "S")


@dataclass(frozen=True)
class ScanFacts:
    """What QC compares: geometry in RAS axis order and intensity percentiles per channel.

    Attributes:
        spacing: voxel size in mm along the RAS axes.
        shape: voxels along the RAS axes.
        intensity: channel name -> (p1, p99) in source units.
    """

    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    intensity: dict[str, tuple[float, float]]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Field of view per RAS axis in mm."""
        return tuple(float(n * s) for n, s in zip(self.shape, self.spacing))


@dataclass(frozen=True)
class QCReference:
    """Ranges seen in the training split (already widened by the margins above).

    Attributes:
        cases: number of training cases the ranges come from.
        class_volume_ml: class name -> (low, high) mL.
        intensity: channel -> {"p1": (low, high), "p99": (low, high)}.
        spacing_mm: (low, high) per RAS axis.
        extent_mm: (low, high) field of view per RAS axis.
        shape: (min, max) voxels per RAS axis in training (not widened; informative).
        uncertainty_threshold: mean normalised entropy inside predicted structures above which to flag.
        single_structure: the model finds one connected structure; foreground outside it is flagged.
        outside_ml_limit: mL of foreground outside the main structure tolerated (``single_structure``).
        min_class_separation: smallest tolerated d' between predicted classes' input intensities (0 = off).
        tta_disagreement_limit: largest tolerated share of voxels changing class between TTA passes.
    """

    cases: int
    class_volume_ml: dict[str, tuple[float, float]]
    intensity: dict[str, dict[str, tuple[float, float]]]
    spacing_mm: tuple[tuple[float, float], ...]
    extent_mm: tuple[tuple[float, float], ...]
    shape: tuple[tuple[int, int], ...]
    uncertainty_threshold: float = UNCERTAINTY_THRESHOLD
    single_structure: bool = False
    outside_ml_limit: float = OUTSIDE_ML_LIMIT
    min_class_separation: float = 0.0
    tta_disagreement_limit: float = TTA_DISAGREEMENT_LIMIT

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (lists) for the model card."""
        return {
            "cases": self.cases,
            "margins": {"volume": VOLUME_MARGIN, "geometry_factor": GEOMETRY_FACTOR, "intensity": INTENSITY_MARGIN},
            "class_volume_ml": {name: list(pair) for name, pair in self.class_volume_ml.items()},
            "intensity": {c: {k: list(v) for k, v in p.items()} for c, p in self.intensity.items()},
            "spacing_mm": [list(pair) for pair in self.spacing_mm],
            "extent_mm": [list(pair) for pair in self.extent_mm],
            "shape": [list(pair) for pair in self.shape],
            "uncertainty_threshold": self.uncertainty_threshold,
            "single_structure": self.single_structure,
            "outside_ml_limit": self.outside_ml_limit,
            "min_class_separation": self.min_class_separation,
            "tta_disagreement_limit": self.tta_disagreement_limit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path) -> QCReference:
        """Read the model card's ``qc`` section.

        Raises:
            InputError: a missing or malformed entry, naming it.
        """
        try:
            return cls(
                cases=int(data["cases"]),
                class_volume_ml={str(k): _pair(v) for k, v in data["class_volume_ml"].items()},
                intensity={str(c): {str(k): _pair(v) for k, v in p.items()} for c, p in data["intensity"].items()},
                spacing_mm=tuple(_pair(v) for v in data["spacing_mm"]),
                extent_mm=tuple(_pair(v) for v in data["extent_mm"]),
                shape=tuple(tuple(int(x) for x in _pair(v)) for v in data["shape"]),
                uncertainty_threshold=float(data.get("uncertainty_threshold", UNCERTAINTY_THRESHOLD)),
                single_structure=bool(data.get("single_structure", False)),
                outside_ml_limit=float(data.get("outside_ml_limit", OUTSIDE_ML_LIMIT)),
                min_class_separation=float(data.get("min_class_separation", 0.0)),
                tta_disagreement_limit=float(data.get("tta_disagreement_limit", TTA_DISAGREEMENT_LIMIT)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(path, f"the 'qc' section is malformed ({type(error).__name__}: {error})",
                             "re-export the model with `medseg export-model`") from None


def _pair(value: Any) -> tuple[float, float]:
    low, high = value
    return float(low), float(high)


def scan_facts(volume: Volume) -> ScanFacts:
    """Spacing and shape per RAS axis and p1/p99 per channel of a scan (C, I, J, K)."""
    order = nibabel.orientations.io_orientation(np.asarray(volume.affine))[:, 0].astype(int)
    spacing = [0.0, 0.0, 0.0]
    shape = [0, 0, 0]
    for axis, ras_axis in enumerate(order):
        spacing[ras_axis] = volume.spacing[axis]
        shape[ras_axis] = volume.spatial_shape[axis]
    intensity = {}
    for name, channel in zip(volume.channel_names, volume.array):
        values = np.asarray(channel).ravel()
        step = max(1, values.size // PERCENTILE_SAMPLES)
        low, high = np.percentile(values[::step].astype(np.float64), [1.0, 99.0])
        intensity[name] = (float(low), float(high))
    return ScanFacts(tuple(spacing), tuple(shape), intensity)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL (|det| of the affine's 3x3 part / 1000)."""
    return float(np.prod(spacing_from_affine(affine))) / 1000.0


def build_reference(
    facts: Sequence[ScanFacts], class_volumes: Sequence[Mapping[str, float]], class_names: Sequence[str],
    *, intensity_ranges: bool = True,
) -> QCReference:
    """Widened ranges from the training cases' scan facts and label volumes (mL per foreground class).

    Args:
        intensity_ranges: keep p1/p99 ranges (inputs in physical units only, e.g. CT in HU).

    Raises:
        ValueError: no cases.
    """
    if not facts:
        raise ValueError("a QC reference needs at least one training case")
    volumes = {}
    for name in class_names[1:]:
        values = [float(v.get(name, 0.0)) for v in class_volumes]
        volumes[name] = (min(values) * (1.0 - VOLUME_MARGIN), max(values) * (1.0 + VOLUME_MARGIN))
    intensity = {}
    for channel in facts[0].intensity if intensity_ranges else ():
        lows = np.array([f.intensity[channel][0] for f in facts])
        highs = np.array([f.intensity[channel][1] for f in facts])
        slack = INTENSITY_MARGIN * max(float(np.median(highs - lows)), 1e-6)
        intensity[channel] = {
            "p1": (float(lows.min() - slack), float(lows.max() + slack)),
            "p99": (float(highs.min() - slack), float(highs.max() + slack)),
        }

    def widened(values: np.ndarray) -> tuple[tuple[float, float], ...]:
        return tuple((float(v.min() / GEOMETRY_FACTOR), float(v.max() * GEOMETRY_FACTOR)) for v in values.T)

    spacing = np.array([f.spacing for f in facts])
    extent = np.array([f.extent_mm for f in facts])
    shape = np.array([f.shape for f in facts])
    return QCReference(
        cases=len(facts), class_volume_ml=volumes, intensity=intensity, spacing_mm=widened(spacing),
        extent_mm=widened(extent), shape=tuple((int(v.min()), int(v.max())) for v in shape.T),
    )


def mean_foreground_uncertainty(labels: np.ndarray, uncertainty: np.ndarray) -> float:
    """Mean of ``uncertainty`` (I, J, K) over voxels with a foreground label; NaN when there are none."""
    mask = np.asarray(labels) > 0
    return float(np.asarray(uncertainty)[mask].mean()) if mask.any() else math.nan


def _outside(value: float, bounds: tuple[float, float]) -> bool:
    return value < bounds[0] or value > bounds[1]


def _triple(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def qc_flags(
    reference: QCReference | None,
    volume: Volume,
    class_volumes_ml: Mapping[str, float],
    mean_uncertainty: float,
    *,
    uncertainty_threshold: float | None = None,
    labels: np.ndarray | None = None,
    tta_disagreement: float = math.nan,
) -> tuple[str, ...]:
    """The triage flags of one prediction (see the module docstring for each rule).

    Args:
        reference: ranges from the training split; None = only the empty and uncertainty checks.
        volume: the input scan (C, I, J, K).
        class_volumes_ml: predicted volume per foreground class.
        mean_uncertainty: ``mean_foreground_uncertainty`` of the prediction (NaN when empty).
        uncertainty_threshold: overrides the reference's threshold.
        labels: the predicted labels (I, J, K) on ``volume``'s grid, for the content checks.
        tta_disagreement: ``pass_disagreement`` of the TTA passes (NaN without TTA).
    """
    flags: list[str] = []
    empty = sum(class_volumes_ml.values()) <= 0.0
    if empty:
        flags.append("empty prediction")
    threshold = uncertainty_threshold
    if threshold is None:
        threshold = reference.uncertainty_threshold if reference is not None else UNCERTAINTY_THRESHOLD
    if math.isfinite(mean_uncertainty) and mean_uncertainty > threshold:
        flags.append(
            f"high uncertainty: mean normalised entropy {mean_uncertainty:.3f} inside the predicted structures "
            f"(threshold {threshold:.2f})"
        )
    if reference is None:
        return tuple(flags)
    flags += _content_flags(reference, volume, labels, tta_disagreement, empty)
    if not empty:
        for name, value in class_volumes_ml.items():
            bounds = reference.class_volume_ml.get(name)
            if bounds is not None and _outside(value, bounds):
                flags.append(
                    f"volume out of range: {name} {value:.1f} mL, training range {bounds[0]:.1f}-{bounds[1]:.1f} mL"
                )
    facts = scan_facts(volume)
    checks = (("spacing", facts.spacing, reference.spacing_mm, "mm"),
              ("shape", facts.extent_mm, reference.extent_mm, "mm field of view"))
    for key, values, ranges, unit in checks:
        if any(_outside(v, r) for v, r in zip(values, ranges)):
            expected = ", ".join(f"{axis} {r[0]:.4g}-{r[1]:.4g}" for axis, r in zip(AXES, ranges))
            flags.append(f"{key} out of range: {_triple(values)} {unit} (R x A x S), training {expected}")
    # Channels are matched by position: the input's channels are in the model's modality order.
    for (channel, expected), (low, high) in zip(reference.intensity.items(), facts.intensity.values()):
        for percentile, value in (("p1", low), ("p99", high)):
            bounds = expected[percentile]
            if _outside(value, bounds):
                flags.append(
                    f"intensity out of range: {channel} {percentile} {value:.4g}, "
                    f"training {bounds[0]:.4g}-{bounds[1]:.4g}"
                )
    return tuple(flags)


def _content_flags(
    reference: QCReference, volume: Volume, labels: np.ndarray | None, tta_disagreement: float, empty: bool
) -> list[str]:
    """Flags from the prediction itself: stray foreground, classes the input does not separate, TTA disagreement."""
    flags = []
    if math.isfinite(tta_disagreement) and tta_disagreement > reference.tta_disagreement_limit:
        flags.append(
            f"passes disagree: {100 * tta_disagreement:.1f} % of the predicted voxels change class between "
            f"mirrored passes (limit {100 * reference.tta_disagreement_limit:.0f} %)"
        )
    if labels is None or empty:
        return flags
    if reference.single_structure:
        outside = outside_main_structure_ml(labels, volume.spacing)
        if outside > reference.outside_ml_limit:
            flags.append(
                f"tissue outside the main structure: {outside:.1f} mL of predicted foreground lies outside the "
                f"largest connected structure (limit {reference.outside_ml_limit:g} mL)"
            )
    if reference.min_class_separation > 0:
        separation, pair = minimum_class_separation(np.asarray(volume.array[0]), labels, reference_names(reference))
        if math.isfinite(separation) and separation < reference.min_class_separation:
            flags.append(
                f"low class contrast: {pair} d'={separation:.2f} in the input "
                f"(below {reference.min_class_separation:.2f}: the classes barely differ in intensity)"
            )
    return flags


def reference_names(reference: QCReference) -> tuple[str, ...]:
    """Class names by label value (background first) as the reference stores them."""
    return ("background", *reference.class_volume_ml)
