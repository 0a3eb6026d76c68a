"""ECE on toys with known answers; temperature scaling fixes an over-confident toy model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.evaluation.calibration import (
    CALIBRATION_FILE,
    classwise_ece,
    expected_calibration_error,
    fit_temperature,
    load_calibration,
    negative_log_likelihood,
    reliability,
    save_calibration,
    softmax_with_temperature,
)


def _two_groups() -> tuple[np.ndarray, np.ndarray]:
    """10 samples at confidence 0.9 (9 right) and 10 at 0.6 (5 right)."""
    high = np.tile([0.9, 0.1], (10, 1))
    low = np.tile([0.6, 0.4], (10, 1))
    labels = np.array([0] * 9 + [1] + [0] * 5 + [1] * 5)
    return np.concatenate([high, low]), labels


def test_top_label_ece_of_two_groups() -> None:
    probabilities, labels = _two_groups()
    # |0.9 - 0.9| * 10/20 + |0.5 - 0.6| * 10/20
    assert expected_calibration_error(probabilities, labels, n_bins=10) == pytest.approx(0.05)
    data = reliability(probabilities, labels, n_bins=10)
    assert data.counts.sum() == 20 and np.count_nonzero(data.counts) == 2
    filled = data.counts > 0
    assert sorted(data.accuracy[filled]) == pytest.approx([0.5, 0.9])
    assert sorted(data.confidence[filled]) == pytest.approx([0.6, 0.9])


def test_classwise_ece_and_volume_layout() -> None:
    probabilities = np.tile([0.7, 0.3], (10, 1))
    labels = np.array([0, 1] * 5)
    assert classwise_ece(probabilities, labels, n_bins=10) == pytest.approx({0: 0.2, 1: 0.2})
    volume = probabilities.T.reshape(2, 2, 5, 1)  # (C, I, J, K)
    assert expected_calibration_error(volume, labels.reshape(2, 5, 1)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="labels must lie"):
        expected_calibration_error(probabilities, labels + 1)


def _overconfident(seed: int = 0, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Logits 5 x those of a calibrated model, labels drawn from the calibrated model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return 5.0 * logits, labels


def test_temperature_scaling_lowers_ece_and_nll_of_an_overconfident_model() -> None:
    logits, labels = _overconfident()
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(5.0, rel=0.1)
    before = expected_calibration_error(softmax_with_temperature(logits, 1.0, axis=1), labels)
    after = expected_calibration_error(softmax_with_temperature(logits, temperature, axis=1), labels)
    assert before > 0.1 and after < 0.03
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels) - 0.5
    # the same data as a (C, I, J, K) volume, fitted on a sampled subset
    volume = logits.T.reshape(3, 20, 25, 40)
    subset = fit_temperature(volume, labels.reshape(20, 25, 40), max_samples=5000, seed=1)
    assert subset == pytest.approx(temperature, rel=0.1)


def test_calibration_json_round_trip_and_errors(tmp_path: Path) -> None:
    assert load_calibration(tmp_path) == 1.0
    path = save_calibration(tmp_path, 2.5, ece_before=0.2, ece_after=0.01)
    assert path == tmp_path / CALIBRATION_FILE
    assert json.loads(path.read_text())["ece_after"] == 0.01
    assert load_calibration(tmp_path) == 2.5
    path.write_text('{"temperature": -1}')
    with pytest.raises(InputError, match="positive number"):
        load_calibration(tmp_path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="calibration.json"):
        load_calibration(tmp_path)
    with pytest.raises(ValueError):
        save_calibration(tmp_path, 0.0, 0.1, 0.1)
