"""Smooth random fields and separable Gaussian blur on CPU tensors (the generator's building blocks)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as functional


def smooth_field(
    shape: Sequence[int], channels: int, control_points: int, generator: torch.Generator
) -> torch.Tensor:
    """Standard-normal values on a coarse grid, upsampled trilinearly: a smooth random field.

    Args:
        shape: output (I, J, K).
        channels: independent fields.
        control_points: coarse grid size per axis (2 = nearly linear, 8 = wavy).
        generator: the torch random generator (seeded by the caller).

    Returns:
        (channels, I, J, K) float32, values of order 1.
    """
    coarse = torch.randn((1, channels, control_points, control_points, control_points), generator=generator)
    return functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1D Gaussian, truncated at 3 sigma (length 2 * ceil(3 sigma) + 1)."""
    radius = max(int(math.ceil(3.0 * sigma)), 1)
    positions = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (positions / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(volume: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur of (C, I, J, K) with one sigma (voxels) per axis; 0 skips an axis.

    Edges are replicated, so a blurred border does not darken.
    """
    result = volume[None]
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0.05:
            continue
        kernel = gaussian_kernel(float(sigma))
        radius = (len(kernel) - 1) // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(kernel)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        channels = result.shape[1]
        weight = kernel.reshape(shape).repeat(channels, 1, 1, 1, 1)
        result = functional.conv3d(functional.pad(result, pad, mode="replicate"), weight, groups=channels)
    return result[0]
