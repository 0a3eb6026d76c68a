"""Cut tissue joined to the main structure by narrow bridges: a morphological opening of the foreground.

A brain model run on a whole head can label mucosa of the nasal cavity and sinuses, or the orbits, as
tissue; those pieces touch the brain through the thin ethmoid roof, so keeping the largest connected
component (``keep_largest_foreground``) keeps them. Brain-extraction tools cut them the same way:
erode the foreground by a ball of radius ``r`` mm, keep the largest eroded piece (the brain's core),
dilate it back by ``r`` plus a margin and keep only foreground inside that. A piece joined through a
bridge narrower than about ``2 r`` falls away; the brain, thick everywhere but at its finest edges, keeps
its outline (measured at the shipped r = 10 mm, margin 4 mm: real heads 147 -> 65 and 80 -> 64 mL of tissue
outside the brain; moved skull-stripped brains lose at most 0.013 Dice per class).

Done on a coarse grid of about ``grid_mm`` (blocks of whole voxels; a block is foreground when most of it
is), with the ball applied by FFT convolution in PyTorch (``_convolve``): scipy's exact distance transform
of a 1 mm head takes 4-5 s on 2 cores. The coarse grid moves the cut by at most one block, which the
dilation's margin covers (``margin_mm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft
import torch

from medseg.inference.postprocess import largest_component

DEFAULT_GRID_MM = 2.0
DEFAULT_MARGIN_MM = 4.0


def _ball(radius_voxels: Sequence[float]) -> torch.Tensor:
    """(1, 1, A, B, C) float32 ellipsoid of the given radii (voxels per axis), 1 inside."""
    half = [int(np.floor(r)) for r in radius_voxels]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    inside = sum((a / max(r, 1e-6)) ** 2 for a, r in zip(axes, radius_voxels)) <= 1.0
    return torch.from_numpy(inside.astype(np.float32))[None, None]


def _convolve(mask: np.ndarray, ball: torch.Tensor) -> np.ndarray:
    """(I, J, K) count of ``mask`` voxels under the ball centred at each voxel (zero outside the grid).

    By FFT (zero-padded to a linear convolution): its cost does not grow with the ball, where a direct
    single-channel conv3d with an 11^3 ball took 2.5 s on a 1.5 mm head; counts are exact to ~1e-3.
    Each axis is padded on to the next length with small prime factors (``scipy.fft.next_fast_len``):
    more zeros change nothing, and a coarse 1 mm head's 138 = 2 x 3 x 23 planes cost 3x what 144 do
    (``opened_region`` of a 256 x 256 x 186 head 0.27 -> 0.09 s, identical regions; 2026-12-06).
    """
    kernel = ball[0, 0]
    full = [scipy.fft.next_fast_len(n + k - 1, real=True) for n, k in zip(mask.shape, kernel.shape)]
    values = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
    with torch.inference_mode():
        product = torch.fft.rfftn(values, s=full) * torch.fft.rfftn(kernel, s=full)
        counts = torch.fft.irfftn(product, s=full)
        starts = [k // 2 for k in kernel.shape]
        return counts[starts[0] : starts[0] + mask.shape[0], starts[1] : starts[1] + mask.shape[1],
                      starts[2] : starts[2] + mask.shape[2]].numpy()


def opened_region(
    foreground: np.ndarray, spacing: Sequence[float], radius_mm: float, grid_mm: float = DEFAULT_GRID_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> np.ndarray | None:
    """The region an opening of radius ``radius_mm`` keeps around the largest eroded piece.

    Args:
        foreground: (I, J, K) bool.
        spacing: voxel size in mm per axis.
        radius_mm: ball radius; bridges narrower than about twice this are cut.
        grid_mm: coarse grid the opening is computed on (blocks of ``round(grid_mm / spacing)`` voxels).
        margin_mm: added to the radius of the dilation back (covers the block rounding and gives back
            the corners of the structure that the ball cannot reach).

    Returns:
        (I, J, K) bool: voxels within ``radius_mm`` (+ margin) of the largest piece of the eroded
        foreground; None when the erosion leaves nothing (a structure thinner than the ball everywhere).
    """
    blocks = [max(1, int(round(grid_mm / s))) for s in spacing]
    shape = foreground.shape
    extra = [-n % b for n, b in zip(shape, blocks)]
    with torch.inference_mode():  # block means (zeros past the end count): numpy's strided mean is ~10x slower
        grid = torch.from_numpy(np.ascontiguousarray(foreground)).to(torch.float32)[None, None]
        if any(extra):
            grid = torch.nn.functional.pad(grid, (0, extra[2], 0, extra[1], 0, extra[0]))
        coarse = (torch.nn.functional.avg_pool3d(grid, kernel_size=blocks, stride=blocks)[0, 0] >= 0.5).numpy()
        del grid
    coarse_spacing = [s * b for s, b in zip(spacing, blocks)]
    ball = _ball([radius_mm / s for s in coarse_spacing])
    eroded = _convolve(coarse, ball) >= float(ball.sum()) - 0.5
    if not eroded.any():
        return None
    core = largest_component(eroded)
    grown = _ball([(radius_mm + margin_mm) / s for s in coarse_spacing])
    kept = _convolve(core, grown) > 0.5
    for axis, block in enumerate(blocks):
        kept = np.repeat(kept, block, axis=axis)
    return kept[: shape[0], : shape[1], : shape[2]]


def open_foreground(labels: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Labels with foreground outside the opened region set to 0 (the input when nothing survives erosion).

    Args:
        labels: (I, J, K) integer label map, 0 = background.
        spacing: voxel size in mm per axis.
        radius_mm: the opening's ball radius (> 0).

    Returns:
        (I, J, K) label map, same dtype; the caller keeps the largest connected component after.
    """
    region = opened_region(labels != 0, spacing, radius_mm)
    if region is None:
        return labels
    out = labels.copy()
    out[~region] = 0
    return out
