"""Entropy bounds, error-detection AUROC, Gaussian CRPS against numeric integration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from medseg.evaluation.uncertainty import (
    error_auroc,
    gaussian_crps,
    predictive_entropy,
    volume_crps,
    volume_distribution,
)


def test_entropy_bounds() -> None:
    uniform = np.full((4, 2, 2, 2), 0.25)
    certain = np.zeros((4, 2, 2, 2))
    certain[1] = 1.0
    assert predictive_entropy(uniform) == pytest.approx(np.ones((2, 2, 2)))
    assert predictive_entropy(uniform, normalise=False) == pytest.approx(np.full((2, 2, 2), math.log(4)), rel=1e-6)
    assert predictive_entropy(certain) == pytest.approx(np.zeros((2, 2, 2)))
    rng = np.random.default_rng(0)
    random = rng.dirichlet(np.ones(3), size=(5, 5, 5)).transpose(3, 0, 1, 2)
    entropy = predictive_entropy(random)
    assert entropy.shape == (5, 5, 5) and entropy.min() >= 0 and entropy.max() <= 1


def test_auroc_perfect_reversed_chance_and_brute_force() -> None:
    errors = np.array([0, 0, 0, 1, 1], dtype=bool)
    assert error_auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), errors) == 1.0
    assert error_auroc(np.array([0.9, 0.8, 0.7, 0.1, 0.2]), errors) == 0.0
    assert error_auroc(np.ones(5), errors) == 0.5
    assert math.isnan(error_auroc(np.ones(3), np.zeros(3, dtype=bool)))
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    wrong = rng.random(40) < 0.3
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0)
             for a, b in itertools.product(scores[wrong], scores[~wrong])]
    assert error_auroc(scores, wrong) == pytest.approx(np.mean(pairs))


def test_gaussian_crps_matches_numeric_integration() -> None:
    for mean, sd, y in ((10.0, 2.0, 13.0), (0.0, 0.5, -0.2), (5.0, 3.0, 5.0)):
        x = np.linspace(mean - 40 * sd - abs(y), mean + 40 * sd + abs(y), 400001)
        integrand = (norm.cdf(x, mean, sd) - (x >= y)) ** 2
        assert gaussian_crps(mean, sd, y) == pytest.approx(np.trapezoid(integrand, x), abs=1e-4)
    assert gaussian_crps(3.0, 0.0, 5.5) == 2.5


def test_volume_crps_of_certain_and_uncertain_predictions() -> None:
    truth = np.zeros((4, 4, 4), dtype=np.uint8)
    truth[:2] = 1  # 32 voxels
    certain = np.zeros((2, 4, 4, 4))
    certain[1, :3] = 1.0  # 48 voxels predicted with p = 1
    certain[0] = 1.0 - certain[1]
    assert volume_crps(certain, truth, voxel_ml=0.5, classes=[1]) == {1: pytest.approx(16 * 0.5)}
    half = np.full((2, 4, 4, 4), 0.5)
    mean, sd = volume_distribution(half[1], voxel_ml=0.5)
    assert (mean, sd) == pytest.approx((32 * 0.5, math.sqrt(64 * 0.25) * 0.5))
    assert volume_crps(half, truth, 0.5, [1])[1] == pytest.approx(gaussian_crps(16.0, 2.0, 16.0))
