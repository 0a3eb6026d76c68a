"""The majority-class baseline is scored with the model's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.evaluation.baseline import baseline_prediction, majority_class, score_baseline


def _truth() -> np.ndarray:
    truth = np.zeros((8, 8, 8), dtype=np.uint8)
    truth[1:4, 1:4, 1:4] = 1  # 27 voxels
    truth[5:7, 5:7, 5:7] = 2  # 8 voxels
    return truth


def test_background_baseline_scores_zero_on_present_structures() -> None:
    truth = _truth()
    assert majority_class([truth]) == 0
    scores = score_baseline(truth, (1.0, 1.0, 1.0), [1, 2, 3])
    for label in (1, 2):
        assert scores[label].dice == 0.0 and scores[label].surface_dice == 0.0
        assert math.isnan(scores[label].hd95_mm)
        assert scores[label].volume_diff_percent == -100.0
    assert scores[2].volume_diff_ml == pytest.approx(-0.008)
    assert scores[3].dice == 1.0  # absent class, correctly absent


def test_majority_over_several_maps_and_a_foreground_majority() -> None:
    mostly_one = np.ones((4, 4, 4), dtype=np.uint8)
    mostly_one[0, 0, :] = 0
    assert majority_class([np.zeros((2, 2, 2), np.uint8), mostly_one]) == 1
    scores = score_baseline(mostly_one, (1.0, 1.0, 1.0), [1], label=1)
    assert scores[1].dice == pytest.approx(2 * 60 / (64 + 60))
    assert baseline_prediction((2, 3, 4), 1).shape == (2, 3, 4)
    assert int(baseline_prediction((2, 3, 4), 1).sum()) == 24
