"""Small scans in awkward orientations (sagittal, oblique) with a two-class mask, for the napari tests."""

from __future__ import annotations

import numpy as np

from medseg.types import Volume

SAGITTAL = np.array([[0, 0, -1.5, 10], [1.2, 0, 0, -5], [0, -1.2, 0, 3], [0, 0, 0, 1.0]])


def oblique_affine() -> np.ndarray:
    """Voxels 1.2 x 1.0 x 2.0 mm, rotated 17 and 11 degrees about two axes."""
    a, b = np.radians(17), np.radians(11)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ np.array(
        [[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.2, 1.0, 2.0])
    affine[:3, 3] = (-12.0, 8.0, 30.0)
    return affine


def phantom(affine: np.ndarray, shape=(14, 12, 10)) -> tuple[Volume, np.ndarray]:
    """A scan with a bright ball and its two-class mask (ball = 1, a corner block = 2)."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    ball = ((grid - centre[:, None, None, None]) ** 2).sum(axis=0) < 12
    image = (100 + 300 * ball + np.arange(np.prod(shape)).reshape(shape) % 7).astype(np.float32)
    mask = ball.astype(np.uint8)
    mask[:3, :2, :4] = 2
    return Volume(array=image[None], affine=affine), mask
