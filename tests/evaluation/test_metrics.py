"""Metrics against hand-computed values on tiny masks with anisotropic voxels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.evaluation.metrics import score_labels, score_masks, voxel_volume_ml

SPACING = (0.5, 0.7, 2.0)  # mm along i, j, k


def _plane(k: int, i_range: slice = slice(None)) -> np.ndarray:
    mask = np.zeros((10, 10, 8), dtype=bool)
    mask[i_range, :, k] = True
    return mask


def test_dice_of_two_overlapping_cubes_is_exact() -> None:
    truth = np.zeros((10, 10, 10), dtype=np.uint8)
    truth[2:6, 2:6, 2:6] = 1
    prediction = np.zeros_like(truth)
    prediction[3:7, 2:6, 2:6] = 1  # overlap 3 * 4 * 4 = 48 of 64 each
    scores = score_labels(prediction, truth, SPACING, [1])[1]
    assert scores.dice == pytest.approx(2 * 48 / 128)
    assert scores.volume_pred_ml == pytest.approx(64 * 0.5 * 0.7 * 2.0 / 1000)
    assert scores.volume_diff_ml == pytest.approx(0.0)
    assert scores.hd95_mm == pytest.approx(0.5)  # one voxel along i


def test_parallel_planes_give_the_slice_distance_in_mm() -> None:
    # every surface voxel of one plane lies 3 slices (3 * 2.0 mm) from the other plane
    scores = score_masks(_plane(5), _plane(2), SPACING, tolerance_mm=6.0)
    assert scores.dice == 0.0
    assert scores.hd95_mm == pytest.approx(6.0)
    assert scores.surface_dice == pytest.approx(1.0)  # all within 6 mm
    assert score_masks(_plane(5), _plane(2), SPACING, tolerance_mm=5.9).surface_dice == pytest.approx(0.0)


def test_half_shifted_plane_hd95_surface_dice_and_volumes() -> None:
    truth = _plane(2)
    prediction = _plane(2, slice(0, 5)) | _plane(5, slice(5, 10))
    scores = score_masks(prediction, truth, SPACING, tolerance_mm=1.2)
    # prediction -> truth: 50 voxels at 0 mm, 50 at 6 mm; truth -> prediction: 50 at 0 mm and
    # 10 each at 0.5, 1.0, 1.5, 2.0, 2.5 mm (along i to the nearest predicted voxel)
    assert scores.dice == pytest.approx(0.5)
    assert scores.hd95_mm == pytest.approx(6.0)
    # within 1.2 mm: prediction 50 of 100, truth 50 + 10 + 10 of 100
    assert scores.surface_dice == pytest.approx(120 / 200, abs=1e-6)
    assert scores.volume_truth_ml == pytest.approx(100 * voxel_volume_ml(SPACING))
    assert voxel_volume_ml(SPACING) == pytest.approx(0.0007)


def test_volume_difference_in_ml_and_percent() -> None:
    truth = np.zeros((6, 6, 6), dtype=np.uint8)
    truth[1:5, 1:5, 1:5] = 2  # 64 voxels
    prediction = np.zeros_like(truth)
    prediction[1:5, 1:5, 1:3] = 2  # 32 voxels
    scores = score_labels(prediction, truth, (1.0, 1.0, 10.0), [2], tolerance_mm=1.0)[2]
    assert scores.volume_truth_ml == pytest.approx(0.64)
    assert scores.volume_diff_ml == pytest.approx(-0.32)
    assert scores.volume_diff_percent == pytest.approx(-50.0)


def test_empty_structure_conventions() -> None:
    empty = np.zeros((6, 6, 6), dtype=bool)
    cube = empty.copy()
    cube[1:4, 1:4, 1:4] = True
    both = score_masks(empty, empty, SPACING, 2.0)
    assert (both.dice, both.hd95_mm, both.surface_dice, both.volume_diff_percent) == (1.0, 0.0, 1.0, 0.0)
    missed = score_masks(empty, cube, SPACING, 2.0)
    assert (missed.dice, missed.surface_dice, missed.volume_diff_percent) == (0.0, 0.0, -100.0)
    assert math.isnan(missed.hd95_mm)
    invented = score_masks(cube, empty, SPACING, 2.0)
    assert (invented.dice, invented.surface_dice) == (0.0, 0.0)
    assert math.isnan(invented.hd95_mm) and math.isnan(invented.volume_diff_percent)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        score_labels(np.zeros((2, 2, 2), int), np.zeros((2, 2, 3), int), SPACING, [1])
    with pytest.raises(ValueError, match="tolerance"):
        score_labels(np.zeros((2, 2, 2), int), np.zeros((2, 2, 2), int), SPACING, [1], tolerance_mm=0)
