"""Synthetic brain-tissue subjects: the tissue template under seeded random anatomy and scanner changes.

Per subject (random parameters drawn first from one seed, then applied):
anatomy — rotation, scaling, shift and elastic deformation (MONAI ``Rand3DElasticd``, one
resampling; labels nearest-neighbour); acquisition — axis order and voxel size (MONAI
``Orientationd``, a partial-volume blur, ``Spacingd``), contrast (gamma), bias field, noise, and the
scanner's arbitrary intensity scale, stored as uint8. The background stays 0, as in a
skull-stripped scan, so files stay small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.data.sample_config import BrainAugmentation
from medseg.types import LabelVolume, SourceInfo, Volume, spacing_from_affine

_FWHM_PER_SIGMA = 2.3548


@dataclass(frozen=True)
class BrainSubjectParams:
    """The per-subject choices that are not drawn inside MONAI transforms.

    Attributes:
        transform_seed: seed of the MONAI random transforms.
        spacing: output voxel size (mm) along the stored i, j, k (k = slice direction).
        orientation: output axis codes, e.g. ``"LPS"`` (axial) or ``"LIA"`` (coronal slices).
        gain: stored value of the bright tissue (uint8 scale).
        noise_std: Gaussian noise standard deviation (template intensity 1 = brightest tissue).
    """

    transform_seed: int
    spacing: tuple[float, float, float]
    orientation: str
    gain: float
    noise_std: float


def draw_subject_params(augment: BrainAugmentation, seed: int, index: int) -> BrainSubjectParams:
    """Subject ``index``'s parameters, a pure function of (seed, index)."""
    rng = np.random.default_rng([seed, index])
    spacing = augment.spacings[int(rng.integers(len(augment.spacings)))]
    orientation = augment.orientations[int(rng.integers(len(augment.orientations)))]
    return BrainSubjectParams(
        transform_seed=int(rng.integers(2**31 - 1)),
        spacing=tuple(float(s) for s in spacing),
        orientation=orientation,
        gain=float(rng.uniform(*augment.gain)),
        noise_std=float(rng.uniform(*augment.noise_std)),
    )


def make_brain_subject(
    template: Volume, labels: LabelVolume, augment: BrainAugmentation, params: BrainSubjectParams
) -> tuple[Volume, LabelVolume]:
    """One synthetic subject.

    Args:
        template: T1 template, array (1, I, J, K) float in [0, 1] (from ``tissue_template``).
        labels: its tissue labels (I, J, K), same grid.
        augment: ranges of the random changes.
        params: this subject's drawn parameters (``draw_subject_params``).

    Returns:
        ``(image, labels)``: image (1, I', J', K') uint8, labels (I', J', K') uint8, on one new grid.
    """
    import torch
    from monai import transforms
    from monai.data import MetaTensor

    template_spacing = np.array(template.spacing)
    # Copies: the template's arrays are shared and read-only.
    affine = torch.tensor(np.array(template.affine, dtype=np.float64))
    data = {
        "image": MetaTensor(torch.tensor(np.array(template.array, dtype=np.float32)), affine=affine),
        "label": MetaTensor(torch.tensor(np.array(labels.array[None], dtype=np.float32)), affine=affine.clone()),
    }
    keys = ("image", "label")
    mean_spacing = float(template_spacing.mean())
    # Rand3DElastic works in voxel units: convert the mm ranges of the definition.
    anatomy = transforms.Rand3DElasticd(
        keys,
        sigma_range=tuple(s / mean_spacing for s in augment.elastic_sigma_mm),
        magnitude_range=tuple(m / mean_spacing for m in augment.elastic_magnitude_mm),
        prob=1.0,
        rotate_range=[np.deg2rad(augment.rotate_deg)] * 3,
        scale_range=[augment.scale] * 3,
        translate_range=list(augment.translate_mm / template_spacing),
        mode=("bilinear", "nearest"),
        padding_mode="zeros",
    )
    anatomy.set_random_state(seed=params.transform_seed)
    data = anatomy(data)

    # Axis order first (lossless), so the drawn spacing is along the stored i, j, k:
    # k is the slice direction, as in a scan acquired in that orientation.
    data = transforms.Orientationd(keys, axcodes=params.orientation, labels=None)(data)
    # Thicker voxels average more tissue (partial volume): blur before resampling,
    # by the extra width the new voxel adds along each axis.
    current = np.array(spacing_from_affine(np.asarray(data["image"].affine)))
    target = np.array(params.spacing)
    extra = np.sqrt(np.maximum(target**2 - current**2, 0.0)) / _FWHM_PER_SIGMA
    if np.any(extra > 0):
        data = transforms.GaussianSmoothd("image", sigma=tuple(extra / current))(data)
    data = transforms.Spacingd(keys, pixdim=params.spacing, mode=("bilinear", "nearest"),
                               padding_mode="zeros", dtype=torch.float32)(data)
    inside = data["image"] > 1e-3  # the skull-stripping mask, before noise
    intensity = transforms.Compose([
        transforms.RandAdjustContrastd("image", gamma=augment.gamma, prob=1.0),
        transforms.RandBiasFieldd("image", coeff_range=augment.bias_coeff, prob=1.0),
        transforms.RandGaussianNoised("image", std=params.noise_std, prob=1.0, sample_std=False),
    ])
    intensity.set_random_state(seed=params.transform_seed)
    data = intensity(data)

    image = (data["image"] * inside).clamp(min=0)[0].numpy()
    brain = image[image > 0]
    bright = float(np.percentile(brain, 99.0)) if brain.size else 1.0
    stored = np.clip(np.rint(image * (params.gain / bright)), 0, 255).astype(np.uint8)
    label_array = np.rint(data["label"][0].numpy()).astype(np.uint8)
    new_affine = np.asarray(data["image"].affine, dtype=np.float64)
    source = SourceInfo(path="", format="memory", modality="MR", description="synthetic T1 subject")
    return (
        Volume(array=stored[None], affine=new_affine, channel_names=("T1",), source=source),
        LabelVolume(array=label_array, affine=new_affine.copy(), class_names=labels.class_names),
    )
