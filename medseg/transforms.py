"""Named MONAI transform chains (``"train"``, ``"val"``, ``"infer"``) built from an ExperimentConfig.

Every chain starts with ``LoadCased``, which reads scans through ``medseg.io`` (so the
geometry is decided once, there) into MetaTensors carrying the voxel -> RAS affine.
The deterministic part (load, orientation, spacing, normalisation, padding) comes
first so ``CacheDataset`` can cache it; the random part (patch sampling, augmentation)
follows.

Data items are dicts: ``{"image": [path per channel], "label": path, "patient": id}``.
After loading, ``image`` is a MetaTensor (C, I, J, K) float32 and ``label`` a MetaTensor
(1, I, J, K) float32 holding integer class values.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandAdjustContrastd,
    RandAffined,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from medseg.config import DEFAULT_MAX_VOXELS, ExperimentConfig
from medseg.errors import ConfigError
from medseg.io.read import read_case, read_labels

Stage = Literal["train", "val", "infer"]
IMAGE = "image"
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
LABEL = "label"


# At most this many non-zero voxels enter the percentile (a strided subset beyond: as good, and the same
# subset torch.quantile's size limit imposed when training ran with it).
PERCENTILE_MAX_VOXELS = 2**24


def percentile_of_nonzero(channel: torch.Tensor | np.ndarray, percentile: float) -> float:
    """The ``percentile`` (linear interpolation, as ``torch.quantile``) of the non-zero voxels of (I, J, K); 0 if none.

    numpy's percentile selects by partition (O(n)); ``torch.quantile`` sorts, 4-7x slower on a head.
    """
    values = np.asarray(channel.detach().cpu().numpy() if isinstance(channel, torch.Tensor) else channel)
    values = values[values != 0]
    if values.size > PERCENTILE_MAX_VOXELS:
        values = values[:: int(math.ceil(values.size / PERCENTILE_MAX_VOXELS))]
    return float(np.percentile(values.astype(np.float32, copy=False), percentile)) if values.size else 0.0


class ScaleToPercentiled(MapTransform):
    """Divide each channel by the ``percentile`` of its non-zero voxels (MR in arbitrary units).

    MONAI's ``ScaleIntensityRangePercentilesd`` takes percentiles over all voxels, so a brain in a
    large zero-padded volume would scale by 0; MR has no meaningful offset, so only a scale is
    removed and zero stays zero. Shapes are kept: (C, I, J, K).
    """

    def __init__(self, keys: Sequence[str], percentile: float = 99.0) -> None:
        super().__init__(keys=keys)
        self.percentile = percentile

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` whose images are scaled channel by channel."""
        item = dict(data)
        for key in self.key_iterator(item):
            image = item[key]
            scaled = []
            for channel in image:
                scale = percentile_of_nonzero(channel, self.percentile)
                scaled.append(channel / scale if scale > 0 else channel)
            item[key] = torch.stack(scaled) if isinstance(image, torch.Tensor) else np.stack(scaled)
            if isinstance(image, MetaTensor) and not isinstance(item[key], MetaTensor):
                item[key] = MetaTensor(item[key], affine=image.affine, meta=image.meta)
        return item


# z-scoring over non-zero voxels treats voxels at most this share of the channel's largest magnitude as zero.
FAINT_FRACTION = 1e-3


class ZeroFaintd(MapTransform):
    """Set voxels whose magnitude is at most ``fraction`` of their channel's largest magnitude to exactly 0.

    ``NormalizeIntensityd(nonzero=True)`` is discontinuous at 0: a voxel at 0 stays 0, one at 1e-7
    becomes ``-mean / std``, as dark as the darkest tissue, and a brain network calls it CSF. Around a
    skull-stripped (zero-padded) brain, whether the 2 mm resampling (``Spacingd``, bilinear) leaves a
    background voxel at exactly 0 or at a few 1e-6 of a neighbour depends on the affine down to its
    rounding: a NIfTI's float32 sform (1e-6 mm from the exact geometry), a DICOM series' decimal strings,
    int16 rounding of the pixels. Oblique grids are hit most: some sample points fall exactly on source
    voxels and lose that exactness under any perturbation. With this step the zero test sits at
    ``fraction`` of the channel's scale, far above such noise. Shapes and meta data are kept: (C, I, J, K).
    """

    def __init__(self, keys: Sequence[str] | str, fraction: float = FAINT_FRACTION) -> None:
        super().__init__(keys=keys)
        self.fraction = float(fraction)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Return a copy of ``data`` whose images have their faint voxels set to 0 (the input is not changed)."""
        item = dict(data)
        for key in self.key_iterator(item):
            image = item[key]
            if isinstance(image, torch.Tensor):
                if image.numel() == 0:
                    continue
                magnitude = image.detach().abs()
                top = magnitude.reshape(magnitude.shape[0], -1).amax(dim=1)
                limit = (top * self.fraction).reshape((-1,) + (1,) * (image.dim() - 1))
                item[key] = image.masked_fill(magnitude <= limit, 0)
            else:
                array = np.asarray(image)
                if array.size == 0:
                    continue
                magnitude = np.abs(array)
                top = magnitude.reshape(magnitude.shape[0], -1).max(axis=1)
                limit = (top * self.fraction).reshape((-1,) + (1,) * (array.ndim - 1))
                item[key] = np.where(magnitude <= limit, np.zeros((), dtype=array.dtype), array)
        return item


class LoadCased(MapTransform):
    """Read a case's scans and label map with ``medseg.io`` into MetaTensors.

    Args:
        channel_names: one name per image path, in channel order.
        max_voxels: refuse larger scans (checked before allocating).
        with_label: read ``data["label"]`` too (training and validation).
    """

    def __init__(
        self, channel_names: Sequence[str], max_voxels: int = DEFAULT_MAX_VOXELS, with_label: bool = True
    ) -> None:
        super().__init__(keys=(IMAGE, LABEL) if with_label else (IMAGE,))
        self.channel_names = tuple(channel_names)
        self.max_voxels = max_voxels
        self.with_label = with_label

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Replace the paths under ``image`` (and ``label``) by MetaTensors (C, I, J, K) / (1, I, J, K)."""
        item = dict(data)
        paths = item[IMAGE]
        paths = [paths] if isinstance(paths, str) else list(paths)
        volume = read_case(paths, self.channel_names, max_voxels=self.max_voxels)
        affine = torch.as_tensor(np.asarray(volume.affine), dtype=torch.float64)
        meta = {
            "filename_or_obj": str(paths[0]),
            "original_affine": affine.clone(),
            "spatial_shape": np.asarray(volume.spatial_shape),
            "original_channel_dim": 0,
        }
        # MetaTensor stores its meta dict and adds the affine to it: give each tensor its own copy.
        label_meta = dict(meta, filename_or_obj=str(item.get(LABEL, "")))
        item[IMAGE] = MetaTensor(torch.as_tensor(volume.array, dtype=torch.float32), affine=affine, meta=meta)
        if self.with_label:
            labels = read_labels(item[LABEL], reference=volume, max_voxels=self.max_voxels)
            array = torch.as_tensor(labels.array.astype(np.float32)[None])
            item[LABEL] = MetaTensor(array, affine=affine.clone(), meta=label_meta)
        return item


def build_transforms(
    stage: Stage, config: ExperimentConfig, channel_names: Sequence[str], patch_size: Sequence[int] = ()
) -> Compose:
    """The named chain for ``stage``.

    Args:
        stage: ``"train"`` (load, preprocess, sample patches, augment), ``"val"`` (load
            image and label, preprocess; whole volumes) or ``"infer"`` (image only).
        config: the experiment (``transforms``, ``sampling``, ``data.max_voxels``,
            ``network.out_channels``).
        channel_names: the modalities in input order.
        patch_size: training patch (I, J, K); required for ``"train"``.

    Raises:
        ConfigError: unknown stage, missing patch size, or sampling options that do not fit.
    """
    if stage not in ("train", "val", "infer"):
        raise ConfigError(f"unknown transform chain '{stage}' (choose train, val or infer)")
    with_label = stage != "infer"
    keys = [IMAGE, LABEL] if with_label else [IMAGE]
    chain: list[Any] = [LoadCased(channel_names, config.data.max_voxels, with_label=with_label)]
    chain += _geometry(config, keys)
    chain += normalisation_steps(config)
    if stage == "train":
        if len(patch_size) != 3:
            raise ConfigError(f"sampling.patch_size: need 3 sizes for training, got {tuple(patch_size)}")
        chain.append(SpatialPadd(keys=keys, spatial_size=tuple(patch_size)))
        chain.append(build_sampler(config, patch_size))
        chain += _augmentation(config)
    return Compose(chain)


def _geometry(config: ExperimentConfig, keys: list[str]) -> list[Any]:
    """Orientation and resampling (nearest neighbour for labels)."""
    steps: list[Any] = []
    settings = config.transforms
    if settings.orientation:
        if len(settings.orientation) != 3 or set(settings.orientation.upper()) - set("RLAPSI"):
            raise ConfigError(f"transforms.orientation: '{settings.orientation}' is not 3 axis codes like RAS")
        # Affines are voxel -> RAS+ (medseg.types); name the RAS label convention explicitly.
        steps.append(Orientationd(keys=keys, axcodes=settings.orientation.upper(), labels=RAS_LABELS))
    if settings.spacing:
        if len(settings.spacing) != 3 or min(settings.spacing) <= 0:
            raise ConfigError(f"transforms.spacing: need 3 positive sizes in mm, got {settings.spacing}")
        modes = ["bilinear", "nearest"][: len(keys)]
        steps.append(Spacingd(keys=keys, pixdim=settings.spacing, mode=modes, dtype=np.float32))
    return steps


def normalisation_steps(config: ExperimentConfig) -> list[Any]:
    """Per-channel z-score over non-zero voxels (``ZeroFaintd`` first), a clipped intensity window scaled to
    0..1, or a percentile scale."""
    settings = config.transforms
    if settings.normalize == "zscore":
        # ZeroFaintd first: which voxels count as zero must not hinge on float noise (see ZeroFaintd).
        return [ZeroFaintd(keys=IMAGE), NormalizeIntensityd(keys=IMAGE, nonzero=True, channel_wise=True)]
    if settings.normalize == "range":
        low, high = settings.intensity_range
        if high <= low:
            raise ConfigError(f"transforms.intensity_range: high must exceed low, got {settings.intensity_range}")
        return [ScaleIntensityRanged(keys=IMAGE, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)]
    if settings.normalize == "percentile":
        return [ScaleToPercentiled(keys=[IMAGE])]
    return []


def build_sampler(config: ExperimentConfig, patch_size: Sequence[int]) -> MapTransform:
    """The patch sampler named by ``config.sampling.name``.

    ``pos_neg``: centres on foreground with weight ``pos`` and background with ``neg``.
    ``class_ratios``: centres on each class (background included) with ``class_ratios``.
    ``deepmedic``: DeepMedic's segment sampling, 50 % of centres on foreground and 50 %
    on background (the centre voxel is the centre of the network's output segment).
    """
    sampling = config.sampling
    keys = [IMAGE, LABEL]
    size = tuple(int(s) for s in patch_size)
    if sampling.samples_per_case < 1:
        raise ConfigError(f"sampling.samples_per_case: must be at least 1, got {sampling.samples_per_case}")
    if sampling.name == "class_ratios":
        ratios = list(sampling.class_ratios) or None
        classes = config.network.out_channels
        if ratios is not None and len(ratios) != classes:
            raise ConfigError(
                f"sampling.class_ratios: {len(ratios)} ratios for {classes} classes (background included)"
            )
        return RandCropByLabelClassesd(
            keys=keys, label_key=LABEL, spatial_size=size, ratios=ratios, num_classes=classes,
            num_samples=sampling.samples_per_case, warn=False,
        )
    pos, neg = (1.0, 1.0) if sampling.name == "deepmedic" else (sampling.pos, sampling.neg)
    if pos < 0 or neg < 0 or pos + neg <= 0:
        raise ConfigError(f"sampling.pos/neg: need non-negative weights, not both zero (got {pos}, {neg})")
    return RandCropByPosNegLabeld(
        keys=keys, label_key=LABEL, spatial_size=size, pos=pos, neg=neg,
        num_samples=sampling.samples_per_case,
    )


def _augmentation(config: ExperimentConfig) -> list[Any]:
    """Random flips, rotation + zoom, noise, intensity scale/shift and gamma on training patches."""
    settings = config.transforms.augment
    if not settings.enabled:
        return []
    keys = [IMAGE, LABEL]
    prob = settings.prob
    steps: list[Any] = []
    if settings.flip:
        steps += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
    if settings.rotate_deg > 0 or settings.scale > 0:
        angle = math.radians(settings.rotate_deg)
        steps.append(
            RandAffined(
                keys=keys, prob=prob, rotate_range=(angle, angle, angle),
                scale_range=(settings.scale,) * 3, mode=("bilinear", "nearest"), padding_mode="zeros",
            )
        )
    if settings.noise_std > 0:
        steps.append(RandGaussianNoised(keys=IMAGE, prob=prob, std=settings.noise_std))
    if settings.intensity_scale > 0:
        steps.append(RandScaleIntensityd(keys=IMAGE, factors=settings.intensity_scale, prob=prob))
    if settings.intensity_shift > 0:
        steps.append(RandShiftIntensityd(keys=IMAGE, offsets=settings.intensity_shift, prob=prob))
    if settings.gamma:
        if len(settings.gamma) != 2 or not 0 < settings.gamma[0] <= settings.gamma[1]:
            raise ConfigError(f"transforms.augment.gamma: need (low, high) with 0 < low <= high, got {settings.gamma}")
        steps.append(RandAdjustContrastd(keys=IMAGE, prob=prob, gamma=tuple(settings.gamma), retain_stats=True))
    return steps
