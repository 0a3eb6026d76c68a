"""The reader's uncertainty map: kept near labelled voxels (in mm on the scan's own grid), zero beyond."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.review.uncertainty_view import near_labels


def test_the_map_is_kept_within_the_margin_in_mm_and_zeroed_beyond() -> None:
    labels = np.zeros((1, 1, 20), np.uint8)
    labels[0, 0, 0] = 2
    uncertainty = np.linspace(0.1, 0.9, 20, dtype=np.float32).reshape(1, 1, 20)
    shown = near_labels(uncertainty, labels, (1.0, 1.0, 2.5), margin_mm=10.0)  # voxel k is 2.5 k mm away
    np.testing.assert_array_equal(shown[0, 0, :5], uncertainty[0, 0, :5])  # 0 .. 10 mm: kept, unchanged
    assert not shown[0, 0, 5:].any()  # 12.5 mm and beyond
    assert shown.dtype == np.float32
    assert near_labels(uncertainty, labels, (1.0, 1.0, 1.0), margin_mm=10.0)[0, 0, 10] == uncertainty[0, 0, 10]


def test_nothing_labelled_shows_nothing_and_other_grids_are_refused() -> None:
    uncertainty = np.full((3, 3, 3), 0.5, np.float32)
    assert not near_labels(uncertainty, np.zeros((3, 3, 3), np.uint8), (1.0, 1.0, 1.0)).any()
    with pytest.raises(ValueError, match="different grids"):
        near_labels(uncertainty, np.zeros((3, 3, 4), np.uint8), (1.0, 1.0, 1.0))
