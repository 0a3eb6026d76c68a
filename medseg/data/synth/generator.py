"""``synthesize``: one random volume and its tissue labels on the network grid.

Steps (SynthSeg, Billot et al. 2023, adapted to a CPU budget by working on the network grid
rather than at 1 mm): sample the 1 mm source through a random rotation, zoom, shift, flip and
smooth elastic displacement (bilinear, so tissue probabilities keep their partial volume);
tissue labels are the argmax of the sampled probabilities inside the brain; draw a head
around the brain (or strip it), optionally with a dura layer against the skull and temporalis
muscles; give every generation label a random mean and spread (optionally the CSF outside the
brain the same as the sulcal CSF, as in a real head) and mix them by partial volume; then the
scanner: bias field, thick slices (blur, down-sample, back to the grid), PSF blur, gamma and
Rician noise. Only the voxel-level randomness uses
the torch generator; every choice above it comes from ``SynthParams``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as functional

from medseg.data.synth.contrast import draw_intensities
from medseg.data.synth.fields import gaussian_blur, smooth_field
from medseg.data.synth.head import LABEL, head_labels
from medseg.data.synth.params import SynthParams
from medseg.data.synth.source import SynthSource

_FWHM_PER_SIGMA = 2.3548


def grid_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Voxel -> RAS mm affine of an axis-aligned output grid centred on the origin."""
    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, spacing)]
    return affine


def _rotation(angles: Sequence[float]) -> torch.Tensor:
    """3x3 rotation about R, then A, then S (radians)."""
    a, b, c = (float(v) for v in angles)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).float()


def template_coordinates(
    source: SynthSource, params: SynthParams, shape: Sequence[int], spacing: Sequence[float],
    generator: torch.Generator,
) -> torch.Tensor:
    """Template RAS mm of every output voxel under the volume's pose and elastic anatomy: (3, I, J, K)."""
    axes = [(torch.arange(n, dtype=torch.float32) - (n - 1) / 2.0) * float(s) for n, s in zip(shape, spacing)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    if params.flip:
        points[0] = -points[0]
    matrix = _rotation(params.rotation) @ torch.diag(1.0 / torch.tensor(params.scale, dtype=torch.float32))
    mapped = torch.einsum("ab,bijk->aijk", matrix, points)
    offset = torch.tensor(source.brain_centre_mm, dtype=torch.float32) - torch.tensor(params.translation_mm)
    mapped += offset[:, None, None, None]
    if params.elastic_mm > 0:
        mapped += params.elastic_mm * smooth_field(shape, 3, params.elastic_points, generator)
    return mapped


def sample_source(source: SynthSource, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of the source channels at template mm ``coords`` (3, I, J, K): (6, I, J, K)."""
    size = torch.tensor(source.shape, dtype=torch.float32)
    index = coords - torch.tensor(source.origin_mm, dtype=torch.float32)[:, None, None, None]
    normalised = 2.0 * index / (size[:, None, None, None] - 1.0) - 1.0
    # grid_sample's last axis is (x -> W = K, y -> H = J, z -> D = I).
    grid = normalised.flip(0).permute(1, 2, 3, 0)[None]
    return functional.grid_sample(source.channels[None], grid, mode="bilinear", padding_mode="border",
                                  align_corners=True)[0]


def tissue_labels(sampled: torch.Tensor) -> torch.Tensor:
    """0 background, 1 CSF, 2 GM, 3 WM: the argmax of the sampled probabilities where the brain is >= 50 %."""
    probabilities = sampled[:3]
    brain = probabilities.sum(dim=0)
    return torch.where(brain >= 0.5, probabilities.argmax(dim=0) + 1, 0).to(torch.uint8)


def _mix_brain(sampled: torch.Tensor, values: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Per-voxel brain value from the tissue probabilities, ventricles and deep gray matter by depth."""
    csf, gm, wm, _, _, depth = sampled
    ventricle = torch.sigmoid((depth - float(rng.uniform(10.0, 16.0))) / 2.0)
    deep = torch.sigmoid((depth - float(rng.uniform(16.0, 22.0))) / 3.0)
    csf_value = values[LABEL["csf_sulcal"]] * (1 - ventricle) + values[LABEL["csf_ventricle"]] * ventricle
    gm_value = values[LABEL["gm_cortex"]] * (1 - deep) + values[LABEL["gm_deep"]] * deep
    return csf * csf_value + gm * gm_value + wm * float(values[LABEL["wm"]])


def tie_rim_to_csf(means: np.ndarray, stds: np.ndarray, ratio: float, csf_level: float | None = None) -> None:
    """In place: the CSF rim's mean becomes ``ratio`` times the sulcal CSF's, its spread the same.

    Args:
        means, stds: (len(GENERATION_LABELS),) per-label intensity models (``draw_intensities``).
        ratio: rim mean over CSF mean.
        csf_level: the CSF's mean where the brain does not take it from ``means`` (the template T1's own
            CSF); None = the sulcal CSF label's.
    """
    csf = LABEL["csf_sulcal"]
    means[LABEL["csf_rim"]] = ratio * (means[csf] if csf_level is None else csf_level)
    if csf_level is None:
        stds[LABEL["csf_rim"]] = stds[csf]


def _thick_slices(image: torch.Tensor, axis: int, factor: float) -> torch.Tensor:
    """Simulate slices ``factor`` grid voxels apart along ``axis``: slice-profile blur, sample, interpolate back."""
    sigmas = [0.0, 0.0, 0.0]
    sigmas[axis] = factor / _FWHM_PER_SIGMA
    blurred = gaussian_blur(image, sigmas)
    size = list(image.shape[1:])
    coarse = list(size)
    coarse[axis] = max(int(round(size[axis] / factor)), 2)
    low = functional.interpolate(blurred[None], size=coarse, mode="trilinear", align_corners=True)
    return functional.interpolate(low, size=size, mode="trilinear", align_corners=True)[0]


def synthesize(
    source: SynthSource, params: SynthParams, shape: Sequence[int], spacing: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One synthetic volume.

    Args:
        source: the template channels (``load_synth_source()``).
        params: this volume's random choices (``draw_params``).
        shape: output grid (I, J, K).
        spacing: output voxel size, mm (the network's grid).

    Returns:
        ``(image, labels, affine)``: image (1, I, J, K) float32, non-negative, in arbitrary units
        (normalise it as inference does); labels (I, J, K) uint8 (0 background, 1 CSF, 2 GM, 3 WM);
        affine (4, 4) voxel -> RAS mm.
    """
    generator = torch.Generator().manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    coords = template_coordinates(source, params, shape, spacing, generator)
    sampled = sample_source(source, coords)
    labels = tissue_labels(sampled)
    brain = sampled[:3].sum(dim=0).clamp(0.0, 1.0)
    dist_out = sampled[4]

    late = np.random.default_rng((params.seed, 1)) if params.dura_mm > 0 else None
    means, stds = draw_intensities(params.contrast, rng, late)
    if params.whole_head:
        muscle_rng = np.random.default_rng((params.seed, 3)) if params.temporalis_mm > 0 else None
        outside = head_labels(dist_out, coords, rng, generator, params.dura_mm, params.temporalis_mm, muscle_rng)
    else:
        outside = torch.where(dist_out <= params.strip_margin_mm, LABEL["csf_rim"], LABEL["air"])
    if params.contrast == "template":
        brightness = float(rng.uniform(0.8, 1.0))
        brain_value = sampled[3] * brightness
        brain_std = brain * float(rng.uniform(0.0, 0.03))
        if params.rim_csf_ratio > 0:
            # The template T1's own CSF: its median where the CSF map is near 1.
            csf = sampled[3][sampled[0] > 0.9]
            level = float(csf.median()) * brightness if csf.numel() else None
            tie_rim_to_csf(means, stds, params.rim_csf_ratio, level)
    else:
        if params.rim_csf_ratio > 0:
            tie_rim_to_csf(means, stds, params.rim_csf_ratio)
        brain_value = _mix_brain(sampled, means, rng)
        brain_std = _mix_brain(sampled, stds, rng)
    outside_mean = torch.from_numpy(means)[outside]
    outside_std = torch.from_numpy(stds)[outside]
    image = brain_value + (1.0 - brain) * outside_mean
    spread = brain_std + (1.0 - brain) * outside_std
    texture = gaussian_blur(torch.randn((1, *image.shape), generator=generator), [0.6, 0.6, 0.6])[0]
    image = (image + spread * texture * 2.0)[None].clamp(min=0.0)

    if params.bias_std > 0:
        image = image * torch.exp(params.bias_std * smooth_field(shape, 1, 4, generator))
    if params.thick_axis >= 0:
        image = _thick_slices(image, params.thick_axis, params.slice_spacing_mm / float(spacing[params.thick_axis]))
    psf = float(rng.uniform(0.0, 0.6))
    image = gaussian_blur(image, [psf, psf, psf])
    bright = torch.quantile(image.flatten()[:: max(image.numel() // 2**20, 1)], 0.995).clamp(min=1e-6)
    image = (image / bright).clamp(min=0.0) ** params.gamma
    if params.noise_std > 0:
        real = torch.randn(image.shape, generator=generator) * params.noise_std
        imaginary = torch.randn(image.shape, generator=generator) * params.noise_std
        image = torch.sqrt((image + real) ** 2 + imaginary**2)  # Rician, as a magnitude image
    if not params.whole_head:
        image = image * (dist_out <= params.strip_margin_mm)[None]
    scale = float(np.exp(rng.uniform(np.log(50.0), np.log(2000.0))))  # arbitrary scanner units
    return (image * scale).float(), labels, grid_affine(shape, spacing)
