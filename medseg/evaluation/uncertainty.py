"""Uncertainty maps and how good they are: entropy, error-detection AUROC, volume CRPS.

* Predictive entropy H = -sum_c p_c log p_c per voxel (natural log); normalised by
  log C it lies in [0, 1].
* Error-detection AUROC: the probability that a randomly chosen wrong voxel is more
  uncertain than a randomly chosen right one (ties count 1/2), i.e. the Mann-Whitney U
  statistic over the product of the class sizes, computed from mid-ranks. 1 = uncertainty
  separates errors perfectly, 0.5 = no better than chance; NaN when there are no errors
  or no correct voxels.
* Volume CRPS: a structure's volume under independent voxel probabilities p_v is
  Poisson-binomial, mean sum p_v and variance sum p_v (1 - p_v) (voxels). We use its
  normal approximation (good for the thousands of voxels of a structure) and the closed
  form CRPS of a Gaussian N(mu, s^2) at the observation y (Gneiting & Raftery 2007):
  CRPS = s * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)), z = (y - mu) / s; with s = 0 it
  is |y - mu|. Volumes and the CRPS are in mL (lower is better; it equals the absolute
  volume error for a certain prediction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def predictive_entropy(probabilities: np.ndarray, *, normalise: bool = True) -> np.ndarray:
    """Entropy of the class distribution at each voxel.

    Args:
        probabilities: (C, I, J, K) (or (C, ...)) class probabilities summing to 1 over C.
        normalise: divide by log C so the result lies in [0, 1].

    Returns:
        (I, J, K) float32 entropy (nats, or a fraction of the maximum when normalised).
    """
    values = np.asarray(probabilities, dtype=np.float64)
    n_classes = values.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(values > 0, values * np.log(values), 0.0)
    entropy = -terms.sum(axis=0)
    if normalise and n_classes > 1:
        entropy /= math.log(n_classes)
    return np.clip(entropy, 0.0, None).astype(np.float32)


def error_auroc(uncertainty: np.ndarray, errors: np.ndarray) -> float:
    """AUROC of ``uncertainty`` as a detector of ``errors`` (see module docstring).

    Args:
        uncertainty: any shape, larger = less sure.
        errors: same shape, True where the prediction is wrong.
    """
    scores = np.asarray(uncertainty, dtype=np.float64).ravel()
    positive = np.asarray(errors, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"uncertainty {np.shape(uncertainty)} and errors {np.shape(errors)} differ in shape")
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return math.nan
    ranks = rankdata(scores)  # mid-ranks for ties
    u_statistic = ranks[positive].sum() - n_positive * (n_positive + 1) / 2.0
    return float(u_statistic / (n_positive * n_negative))


def gaussian_crps(mean: float, sd: float, observation: float) -> float:
    """CRPS of the normal distribution N(mean, sd^2) at ``observation`` (same units)."""
    if sd < 0:
        raise ValueError(f"sd must not be negative, got {sd}")
    if sd == 0:
        return abs(observation - mean)
    z = (observation - mean) / sd
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return sd * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def volume_distribution(probabilities: np.ndarray, voxel_ml: float) -> tuple[float, float]:
    """(mean, sd) in mL of a structure's volume from its voxel probabilities (any shape)."""
    p = np.asarray(probabilities, dtype=np.float64)
    mean = float(p.sum()) * voxel_ml
    sd = math.sqrt(float((p * (1.0 - p)).sum())) * voxel_ml
    return mean, sd


def volume_crps(
    probabilities: np.ndarray, truth: np.ndarray, voxel_ml: float, classes: Sequence[int]
) -> dict[int, float]:
    """CRPS (mL) of each class's predicted volume distribution against its true volume.

    Args:
        probabilities: (C, I, J, K) class probabilities.
        truth: (I, J, K) reference labels.
        voxel_ml: the volume of one voxel, mL.
        classes: the label values to score.
    """
    result = {}
    for c in classes:
        mean, sd = volume_distribution(probabilities[int(c)], voxel_ml)
        true_ml = float(np.count_nonzero(np.asarray(truth) == c)) * voxel_ml
        result[int(c)] = gaussian_crps(mean, sd, true_ml)
    return result
