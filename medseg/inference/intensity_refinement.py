"""Tissue probabilities refined by the scan's own intensities, at the scan's own resolution.

The network sees the scan on its 2 mm grid and has learnt tissue contrast from synthetic data; a
real scan's GM/WM boundary lies where that scan's intensities change, at its own resolution. This
step treats the network's probabilities as a spatial prior and fits one Gaussian per refined class
to the scan's log intensities (expectation-maximisation, as in SPM's unified segmentation and FSL
FAST, which use an atlas where this uses the network):

    posterior_c(x) ∝ prior_c(x) · N(log I(x); μ_c, σ_c²),   c in the refined classes,

with the prior renormalised over the refined classes and their total probability kept, so the
background (and any class not refined) is untouched: the refinement moves boundaries between
tissues, never the brain's outline. The fit is contrast-agnostic (means and variances come from
the scan), so T1, T2, PD or any other contrast works without settings.

Only voxels that are mostly refined classes (their probabilities sum above 0.5) and whose intensity
is above 2 % of the 99th percentile there (not the zeros of a skull-stripped scan) take part; the
rest keep the network's probabilities. Written here because no maintained library does it with a
network prior: scikit-learn's GaussianMixture has no per-voxel prior, SimpleITK's Atropos-like
filters are not in its Python wrapping.

With a ``bias_field`` the scan's smooth intensity drift is divided out, so one Gaussian per class fits the
whole brain (``medseg.inference.bias_field``): ``"em"`` estimates it inside the EM from each voxel's residual
from its class mean, as SPM and FSL FAST do; ``"n4"`` fits N4 once inside the voxels taking part, before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.inference.bias_field import BlockField, check_bias_field, n4_log_bias_field

# Voxels taking part: refined classes' probability above this, intensity above FLOOR_FRACTION of the
# 99th percentile of those voxels' positive intensities.
TISSUE_THRESHOLD = 0.5
FLOOR_FRACTION = 0.02
# A class with less responsibility mass than this (voxels) cannot be fitted: nothing is refined.
MIN_CLASS_VOXELS = 50
# Priors are clipped below at this so that intensity can still overturn a confident network.
PRIOR_FLOOR = 1e-4
# Variances (log intensity) below this are raised to it (a class of constant intensity).
VARIANCE_FLOOR = 1e-4
# The mixture is fitted on at most about this many voxels (an even subsample); every voxel gets its posterior.
FIT_VOXELS = 200_000


@dataclass(frozen=True)
class RefinementFit:
    """What one refinement found.

    Attributes:
        refined: False when too few voxels could be fitted (probabilities left as they were).
        voxels: voxels that took part.
        means: per refined class, the fitted mean intensity (exp of the log mean), scan units.
        spreads: per refined class, the standard deviation of log intensity.
        weights: per refined class, its share of the fitted voxels.
        bias_field: the field divided out (``"none"``, ``"em"`` or ``"n4"``; ``"none"`` also when N4 had
            too few voxels).
        bias_range: with a field, its 1st and 99th percentile over the fitted voxels (1 = no drift).
    """

    refined: bool
    voxels: int
    means: tuple[float, ...] = ()
    spreads: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    bias_field: str = "none"
    bias_range: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"refined": self.refined, "voxels": self.voxels, "means": list(self.means),
                "spreads": list(self.spreads), "weights": list(self.weights), "bias_field": self.bias_field,
                "bias_range": list(self.bias_range)}


def refine_by_intensity(
    image: np.ndarray, probabilities: np.ndarray, classes: tuple[int, ...], iterations: int = 8, *,
    bias_field: str = "none", spacing: tuple[float, ...] = (1.0, 1.0, 1.0), prior_weight: float = 1.0,
) -> RefinementFit:
    """Refine ``probabilities[classes]`` in place from ``image``'s intensities (module docstring).

    Args:
        image: (I, J, K) scan intensities on the probabilities' grid (any units; one channel).
        probabilities: (C, I, J, K) float32 summing to 1 over C; changed in place.
        classes: the class indices refined against each other (at least two).
        iterations: EM iterations (each: fit means and variances, then recompute the posteriors).
        bias_field: ``"n4"`` divides out a smooth bias field fitted (N4) inside the voxels taking part first;
            ``"em"`` fits one inside the EM from the class-conditional residuals (``bias_field.BlockField``).
        spacing: voxel size (mm) of ``image``, for the bias field's smoothness.
        prior_weight: exponent w in (0, 1] on the prior (posterior ∝ prior^w · likelihood): below 1 the
            intensities outweigh a confident network more easily (module docstring).

    Returns:
        The fit (``refined`` False and nothing changed when a class has too few voxels to fit).
    """
    if len(classes) < 2:
        raise ValueError(f"intensity refinement needs at least two classes, got {classes}")
    check_bias_field(bias_field)
    if not 0.0 < prior_weight <= 1.0:
        raise ValueError(f"intensity refinement: prior_weight must be in (0, 1], got {prior_weight}")
    index = list(classes)
    tissue = probabilities[index[0]].copy()  # summed plane by plane: no (T, I, J, K) fancy-index copy
    for c in index[1:]:
        tissue += probabilities[c]
    candidates = tissue > TISSUE_THRESHOLD
    values = image[candidates]
    positive = values[values > 0]
    if positive.size < MIN_CLASS_VOXELS * len(classes):
        return RefinementFit(False, int(positive.size))
    floor = FLOOR_FRACTION * float(np.percentile(positive, 99))
    # Flat indices (one int64 per voxel, not three), read through ravel: a view of contiguous arrays.
    fitted = candidates & (image > floor)
    where = np.flatnonzero(fitted)
    count = where.size
    # numpy float32: one thread, steady under load (torch's threaded ops were 4-30x slower on a busy CPU).
    log_intensity = np.log(np.ravel(image)[where].astype(np.float32))
    bias_used, bias_range = "none", ()
    if bias_field == "n4":
        log_field = n4_log_bias_field(image, fitted, spacing)
        del fitted
        if log_field is not None:
            field_here = np.ravel(log_field)[where]
            del log_field
            log_intensity -= field_here
            bias_used, bias_range = "n4", _drift_range(field_here)
            del field_here
    mass = np.ravel(tissue)[where].astype(np.float32)
    log_prior = np.stack([np.ravel(probabilities[c])[where] for c in index]).astype(np.float32)
    log_prior /= np.maximum(mass, 1e-12)
    np.log(np.clip(log_prior, PRIOR_FLOOR, 1.0, out=log_prior), out=log_prior)
    if prior_weight != 1.0:
        log_prior *= np.float32(prior_weight)  # prior^w; the softmax of each E-step renormalises it
    # The mixture is fitted on an even subsample (every step-th voxel: deterministic), then one E-step
    # gives every voxel its posterior: the cost of the iterations stops growing with the scan.
    step = max(1, count // FIT_VOXELS)
    sample = slice(None, None, step)
    sample_intensity, sample_log_prior = log_intensity[sample], log_prior[:, sample]
    field = BlockField(image.shape, spacing, where) if bias_field == "em" else None
    raw_sample_intensity = sample_intensity
    responsibility = _softmax_rows(sample_log_prior.copy())
    means = variances = np.zeros(len(classes))
    for _ in range(iterations):
        weights = responsibility.sum(axis=1, dtype=np.float64)
        if float(weights.min()) * step < MIN_CLASS_VOXELS:
            return RefinementFit(False, count)
        means, variances = _fit(responsibility, sample_intensity, weights)
        if field is not None:
            precision = responsibility / variances.astype(np.float32)[:, None]
            precision_sum = precision.sum(axis=0)
            class_mean = (precision * means.astype(np.float32)[:, None]).sum(axis=0) / precision_sum
            sample_intensity = raw_sample_intensity - field.update(sample, raw_sample_intensity - class_mean,
                                                                   precision_sum)
        responsibility = _posterior(sample_intensity, sample_log_prior, means, variances)
    if field is not None:
        field_here = field.at(slice(None))
        log_intensity -= field_here
        bias_used, bias_range = "em", _drift_range(field_here)
        del field_here
    responsibility = _posterior(log_intensity, log_prior, means, variances)
    del log_prior
    weights = responsibility.sum(axis=1, dtype=np.float64)
    responsibility *= mass
    for row, c in enumerate(index):
        plane = probabilities[c]
        if plane.flags.c_contiguous:
            plane.reshape(-1)[where] = responsibility[row]  # a view: 3x faster than .flat
        else:
            plane.flat[where] = responsibility[row]  # .flat: writes through for any memory layout
    return RefinementFit(True, count, tuple(math.exp(float(m)) for m in means),
                         tuple(math.sqrt(float(v)) for v in variances), tuple(float(w) for w in weights / weights.sum()),
                         bias_used, bias_range)


def _drift_range(log_field: np.ndarray) -> tuple[float, float]:
    """The multiplicative field's 1st and 99th percentile over the fitted voxels, from its (N,) log values."""
    low, high = np.percentile(log_field, (1, 99))
    return math.exp(float(low)), math.exp(float(high))


def _fit(
    responsibility: np.ndarray, log_intensity: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """M-step: per-class means and variances (float64, (T,)) of (N,) log intensities under (T, N) weights."""
    means = (responsibility @ log_intensity).astype(np.float64) / weights
    deviation = np.square(log_intensity[None] - means.astype(np.float32)[:, None])
    variances = np.einsum("tn,tn->t", responsibility, deviation, dtype=np.float64) / weights
    return means, np.maximum(variances, VARIANCE_FLOOR)


def _posterior(
    log_intensity: np.ndarray, log_prior: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """E-step: (T, N) float32 posteriors from (T, N) log priors and one Gaussian per class."""
    result = np.square(log_intensity[None] - means.astype(np.float32)[:, None])
    result *= (-0.5 / variances).astype(np.float32)[:, None]
    result += log_prior
    result -= (0.5 * np.log(variances)).astype(np.float32)[:, None]
    return _softmax_rows(result)


def _softmax_rows(values: np.ndarray) -> np.ndarray:
    """Softmax over the first axis of (T, N) float32, in place."""
    values -= values.max(axis=0)
    np.exp(values, out=values)
    values /= values.sum(axis=0)
    return values
