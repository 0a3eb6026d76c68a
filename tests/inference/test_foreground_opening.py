"""The foreground opening: pieces joined through narrow bridges are cut, the main structure keeps its outline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.inference.foreground_opening import open_foreground, opened_region
from medseg.inference.model_card import read_card, write_card_text
from medseg.inference.postprocess import keep_largest_foreground
from medseg.inference.prediction import CleanUp


def _ellipsoid(shape: tuple[int, int, int], centre: tuple[float, ...], radii_mm: tuple[float, ...],
               spacing: tuple[float, ...]) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    return sum(((g - c) * s / r) ** 2 for g, c, r, s in zip(grid, centre, radii_mm, spacing)) <= 1.0


def _brain_with_a_bridged_blob(
    spacing: tuple[float, float, float], bridge_mm: float = 5.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (I, J, K) uint8: a 'brain' (ellipsoid 60 x 50 x 45 mm radii, classes 1-3 in shells) and a 'sinus'
    blob (15 mm radius) under it, joined by a bridge of class 2, ``bridge_mm`` wide. Returns labels, brain, blob."""
    shape = tuple(int(round(n / s)) for n, s in zip((150.0, 130.0, 170.0), spacing))
    centre = tuple(n / 2 for n in shape)
    brain = _ellipsoid(shape, centre, (60.0, 50.0, 45.0), spacing)
    labels = np.zeros(shape, np.uint8)
    labels[brain] = 1
    labels[_ellipsoid(shape, centre, (55.0, 45.0, 40.0), spacing)] = 2
    labels[_ellipsoid(shape, centre, (45.0, 35.0, 30.0), spacing)] = 3
    blob_centre = (centre[0], centre[1], centre[2] - 68.0 / spacing[2])
    blob = _ellipsoid(shape, blob_centre, (15.0, 15.0, 15.0), spacing) & ~brain
    bridge = np.zeros(shape, bool)
    half = [max(1, int(round(bridge_mm / 2 / s))) for s in spacing]
    bridge[int(centre[0]) - half[0] : int(centre[0]) + half[0], int(centre[1]) - half[1] : int(centre[1]) + half[1],
           int(blob_centre[2]) : int(centre[2])] = True
    labels[(blob | bridge) & ~brain] = 2
    return labels, brain, blob


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 1.5), (2.0, 2.0, 3.0)])
def test_a_blob_joined_through_a_narrow_bridge_is_cut_and_the_brain_keeps_its_outline(
    spacing: tuple[float, float, float],
) -> None:
    labels, brain, blob = _brain_with_a_bridged_blob(spacing)
    assert keep_largest_foreground(labels)[blob].all()  # the largest component alone keeps the blob
    opened = keep_largest_foreground(open_foreground(labels, spacing, radius_mm=10.0))
    assert not opened[blob].any()
    kept = opened[brain] > 0
    assert kept.mean() > 0.995, kept.mean()  # the brain's outline survives (measured 1.0 on these)
    np.testing.assert_array_equal(opened[opened > 0], labels[opened > 0])  # classes are never changed


def test_the_predictions_clean_up_opens_before_it_keeps_the_largest_foreground() -> None:
    """``CleanUp`` (what every prediction goes through) cuts the bridged blob only with its opening radius."""
    spacing = (1.5, 1.5, 1.5)
    labels, brain, blob = _brain_with_a_bridged_blob(spacing)
    assert CleanUp(largest_foreground=True).apply(labels, spacing)[blob].all()
    opened = CleanUp(largest_foreground=True, foreground_opening_mm=10.0).apply(labels, spacing)
    assert not opened[blob].any() and (opened[brain] > 0).mean() > 0.995
    # the opening serves the largest-foreground clean-up: without it, nothing is cut
    np.testing.assert_array_equal(CleanUp(foreground_opening_mm=10.0).apply(labels, spacing), labels)


def test_a_wide_join_is_not_cut_and_a_structure_thinner_than_the_ball_is_left_alone() -> None:
    spacing = (1.0, 1.0, 1.0)
    labels, _, blob = _brain_with_a_bridged_blob(spacing, bridge_mm=28.0)
    # Bridges narrower than about twice the radius go: a 28 mm bridge stays at 10 mm; at 16 mm it goes and
    # only the blob's part within radius + margin of the brain's core stays.
    assert keep_largest_foreground(open_foreground(labels, spacing, radius_mm=10.0))[blob].all()
    assert keep_largest_foreground(open_foreground(labels, spacing, radius_mm=16.0))[blob].mean() < 0.5
    spacing = (2.0, 2.0, 2.0)
    thin = np.zeros((40, 40, 40), np.uint8)
    thin[10:30, 10:30, 19:21] = 1  # a 4 mm sheet: nothing survives a 10 mm erosion
    assert opened_region(thin > 0, spacing, 10.0) is None
    np.testing.assert_array_equal(open_foreground(thin, spacing, 10.0), thin)


def test_the_card_keeps_the_radius_and_refuses_a_bad_one(tmp_path: Path) -> None:
    card = {
        "format": "medseg-model-card/1", "name": "m", "class_names": ["background", "tissue"],
        "modalities": ["T1"], "postprocess": {"largest_foreground": True, "foreground_opening_mm": 10.0},
    }
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    parsed = read_card(path)
    assert parsed.postprocess.foreground_opening_mm == 10.0
    assert json.loads(write_card_text(parsed))["postprocess"]["foreground_opening_mm"] == 10.0
    for bad in (-1.0, 500.0, "wide"):
        card["postprocess"]["foreground_opening_mm"] = bad
        path.write_text(json.dumps(card))
        with pytest.raises(InputError, match="postprocess"):
            read_card(path)
