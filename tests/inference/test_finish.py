"""The finish's fast paths give the answers of the MONAI transforms they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from medseg.inference.finish import axis_map, to_source_grid
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


def test_oblique_grid_takes_spatial_resample(monkeypatch: pytest.MonkeyPatch):
    """The general path (a rotated grid), whole and a plane at a time, is MONAI's answer."""
    from medseg.inference import finish

    angle = np.radians(10)
    grid = np.eye(4)
    grid[:2, :2] = 2.0 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.eye(4)
    assert axis_map(grid, source) is None
    probabilities = torch.rand((3, 10, 12, 8), generator=torch.Generator().manual_seed(1))
    probabilities /= probabilities.sum(0, keepdim=True)
    volume = Volume(np.zeros((1, 16, 20, 14), dtype=np.float32), source)
    expected = monai_resample(probabilities, grid, volume)
    np.testing.assert_allclose(to_source_grid(probabilities, grid, volume), expected, atol=1e-5)
    monkeypatch.setattr(finish.slabs, "__defaults__", (200,))  # ``slabs`` binds SLAB_VOXELS as its default
    assert len(finish.slabs(volume.spatial_shape)) == 16
    np.testing.assert_allclose(to_source_grid(probabilities, grid, volume), expected, atol=1e-5)
