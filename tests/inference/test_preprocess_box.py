"""``box_on_network_grid``: the network-grid voxels that an outline member must compute for a box of the scan."""

from __future__ import annotations

import itertools

import numpy as np
from predictor_helpers import oblique_affine

from medseg.inference.preprocess import box_on_network_grid


def test_every_source_voxel_of_the_box_lands_inside_the_grid_box_with_its_interpolation_neighbours() -> None:
    source = oblique_affine(1.5, degrees=20.0)
    grid = np.diag([-2.0, 2.0, 2.0, 1.0])  # another orientation (L-R flipped) and spacing
    grid[:3, 3] = source[:3, 3] - np.array([-40.0, 40.0, 40.0])
    grid_shape = (60, 70, 65)
    box = (slice(5, 17), slice(3, 21), slice(8, 14))
    found = box_on_network_grid(box, source, grid, grid_shape)
    points = np.array([[*p, 1.0] for p in itertools.product(*(range(b.start, b.stop) for b in box))]).T
    mapped = (np.linalg.inv(grid) @ source @ points)[:3]
    for axis, part in enumerate(found):
        low, high = np.floor(mapped[axis]).min(), np.ceil(mapped[axis]).max()
        assert 0 <= low and high < grid_shape[axis]  # the box is inside this grid: nothing clipped
        # the trilinear neighbours of every voxel, one voxel more each side, and not much beyond
        assert part.start == low - 1 and part.stop == high + 2, (axis, part, low, high)


def test_the_grid_box_is_clipped_to_the_grid() -> None:
    found = box_on_network_grid((slice(0, 10), slice(0, 10), slice(0, 10)), np.eye(4), np.eye(4), (8, 20, 20))
    assert found == (slice(0, 8), slice(0, 11), slice(0, 11))
