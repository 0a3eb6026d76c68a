"""Reading-room logic without Qt: window presets and drags, interpolation between edited slices."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.review.interpolation import edited_slices, interpolation_changes
from medseg.review.windowing import (
    AUTO, CT_PRESETS, Window, auto_window, default_preset, drag_window, preset_window, presets,
)


def test_ct_presets_and_limits():
    assert presets("CT") == (*CT_PRESETS, AUTO) and presets("MR") == (AUTO,) and presets("") == (AUTO,)
    assert preset_window("brain").limits == (0.0, 80.0)
    assert preset_window("lung").limits == (-1350.0, 150.0)
    assert preset_window("bone") == Window(level=400.0, width=1800.0)
    assert default_preset("CT") == "soft tissue/abdomen" and default_preset("MR") == AUTO
    with pytest.raises(KeyError, match="known: brain"):
        preset_window("liver")
    assert Window.from_limits(-160, 240) == Window(level=40.0, width=400.0)
    assert Window(40, 80).text() == "W 80 L 40"


def test_mr_auto_window_ignores_air_and_outliers():
    rng = np.random.default_rng(0)
    image = np.zeros((20, 20, 20))
    image[5:15, 5:15, 5:15] = rng.uniform(100, 200, (10, 10, 10))
    image[0, 0, 0] = 1e6  # one hot voxel
    low, high = auto_window(image).limits
    assert 100 <= low < 105 and 195 < high <= 200


def test_drag_changes_width_and_level_in_proportion():
    window = Window(level=40.0, width=400.0)
    assert drag_window(window, 100, 0) == Window(level=40.0, width=600.0)  # right widens by width/200 per px
    assert drag_window(window, 0, 50) == Window(level=140.0, width=400.0)  # down raises the level
    assert drag_window(window, -10_000, 0).width > 0


def _two_edited_slices():
    original = np.zeros((9, 20, 20), np.uint8)
    edited = original.copy()
    edited[2, 5:9, 5:9] = 1  # a 4x4 square on slice 2
    edited[6, 5:13, 5:13] = 1  # an 8x8 square on slice 6
    edited[4, 0, :] = 2  # another class on a slice in between stays
    return original, edited


def test_interpolation_fills_between_edited_slices():
    original, edited = _two_edited_slices()
    assert edited_slices(edited, original, 1) == [2, 6]
    indices, values, filled = interpolation_changes(edited, original, 1)
    assert filled == [3, 4, 5]
    result = edited.copy()
    result[indices] = values
    areas = [(result[s] == 1).sum() for s in range(2, 7)]
    assert areas[0] == 16 and areas[-1] == 64 and areas[0] < areas[1] < areas[2] < areas[3] < areas[4]
    assert (result[4, 0, :] == 2).all()  # the other class is kept where the outline does not reach
    assert not result[:2].any() and not result[7:].any()
    # Along another axis: the same structure transposed gives the transposed answer.
    indices_t, values_t, filled_t = interpolation_changes(edited.transpose(1, 0, 2), original.transpose(1, 0, 2),
                                                          1, axis=1)
    result_t = edited.transpose(1, 0, 2).copy()
    result_t[indices_t] = values_t
    np.testing.assert_array_equal(result_t, result.transpose(1, 0, 2))
    assert filled_t == filled


def test_interpolation_towards_an_erased_slice_shrinks():
    original = np.zeros((5, 12, 12), np.uint8)
    original[:, 2:10, 2:10] = 1
    edited = original.copy()
    edited[4] = 0  # erased on slice 4, unchanged elsewhere: only slice 4 is edited -> nothing to fill
    assert interpolation_changes(edited, original, 1)[2] == []
    edited[0, 2:10, 2:10] = 0
    edited[0, 4:8, 4:8] = 1  # slice 0 edited too
    indices, values, filled = interpolation_changes(edited, original, 1)
    result = edited.copy()
    result[indices] = values
    assert filled == [1, 2, 3]
    assert (result[3] == 1).sum() < (result[1] == 1).sum() <= 16
