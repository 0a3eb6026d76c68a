"""The finish's fast paths give the answers of the MONAI transforms they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import KeepLargestConnectedComponent, SpatialResample

from medseg.inference.finish import axis_map, to_source_grid
from medseg.inference.postprocess import keep_largest_component, keep_largest_foreground
from medseg.types import Volume

GRIDS = {
    "scaled": np.diag([2.0, 2.0, 2.0, 1.0]),
    "permuted and flipped": np.array([[0, 0, -1.6, 50], [2.0, 0, 0, -3], [0, 2.4, 0, 7], [0, 0, 0, 1.0]]),
}


def monai_resample(probabilities: torch.Tensor, grid: np.ndarray, volume: Volume) -> np.ndarray:
    resample = SpatialResample(mode="bilinear", padding_mode="border", align_corners=False, dtype=torch.float32)
    whole = resample(MetaTensor(probabilities, affine=torch.as_tensor(grid)), dst_affine=torch.as_tensor(volume.affine),
                     spatial_size=volume.spatial_shape).as_tensor().numpy()
    whole = np.clip(whole, 0, None)
    return whole / whole.sum(0, keepdims=True)


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_separable_resampling_equals_spatial_resample(name):
    grid = GRIDS[name]
    source = np.diag([-1.0, 1.1, 0.9, 1.0])
    source[:3, 3] = [0.3, -0.2, 0.1]  # the grids' origins fall between source voxels
    probabilities = torch.rand((4, 19, 23, 30), generator=torch.Generator().manual_seed(0))
    probabilities /= probabilities.sum(0, keepdim=True)
    volume = Volume(np.zeros((1, 41, 57, 33), dtype=np.float32), source)  # beyond the grid: border padding
    assert axis_map(grid, source) is not None
    got = to_source_grid(probabilities, grid, volume)
    np.testing.assert_allclose(got, monai_resample(probabilities, grid, volume), atol=1e-5)
    np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-5)


def test_oblique_grid_takes_spatial_resample():
    angle = np.radians(10)
    grid = np.eye(4)
    grid[:2, :2] = 2.0 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.eye(4)
    assert axis_map(grid, source) is None
    probabilities = torch.rand((3, 10, 12, 8), generator=torch.Generator().manual_seed(1))
    probabilities /= probabilities.sum(0, keepdim=True)
    volume = Volume(np.zeros((1, 16, 20, 14), dtype=np.float32), source)
    np.testing.assert_allclose(to_source_grid(probabilities, grid, volume),
                               monai_resample(probabilities, grid, volume), atol=1e-5)


def monai_largest(labels: np.ndarray, independent: bool) -> np.ndarray:
    chosen = [int(v) for v in np.unique(labels) if v]
    transform = KeepLargestConnectedComponent(applied_labels=chosen, is_onehot=False, independent=independent,
                                              connectivity=3)
    return np.asarray(transform(torch.as_tensor(labels[None].astype(np.int64)))[0].numpy(), dtype=labels.dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("independent", [True, False])
def test_largest_component_equals_monai(seed, independent):
    rng = np.random.default_rng(seed)
    labels = np.zeros((30, 28, 26), dtype=np.uint8)
    labels[3:27, 4:24, 5:20] = rng.integers(0, 4, size=(24, 20, 15))  # many components per class
    labels[labels == 3] *= rng.random(np.count_nonzero(labels == 3)) < 0.3  # sparse class 3
    got = keep_largest_component(labels, independent=independent)
    np.testing.assert_array_equal(got, monai_largest(labels, independent))
    assert got.dtype == labels.dtype


def test_equal_components_keep_the_one_monai_keeps():
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1  # 8 voxels, first in raster order
    labels[8:10, 8:10, 8:10] = 2  # 8 voxels, last
    labels[5, 5, 5] = 1
    np.testing.assert_array_equal(keep_largest_foreground(labels), monai_largest(labels, False))
    assert keep_largest_foreground(labels)[9, 9, 9] == 2 and keep_largest_foreground(labels)[1, 1, 1] == 0
    empty = np.zeros((4, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(keep_largest_foreground(empty), empty)
