"""A torch Dataset of training patches from freshly synthesised volumes.

Item ``index`` of epoch ``epoch`` is the volume drawn from seed ``(seed, epoch, index)``,
normalised exactly as inference normalises a scan, then cut into patches by the config's
sampler, itself seeded from the same triple. So any worker, any process and a resumed run
produce the same patches for the same (epoch, index), and no two epochs repeat a volume.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform
from torch.utils.data import Dataset

from medseg.config import SynthConfig
from medseg.data.synth.generator import synthesize
from medseg.data.synth.params import draw_params
from medseg.data.synth.source import source_for_contrast

IMAGE, LABEL = "image", "label"


def volume_item(image: torch.Tensor, labels: torch.Tensor, affine: Any) -> dict[str, MetaTensor]:
    """A data dict as the transform chains expect: image (1, I, J, K), label (1, I, J, K) float32."""
    affine_tensor = torch.as_tensor(affine, dtype=torch.float64)
    return {
        IMAGE: MetaTensor(image.float(), affine=affine_tensor),
        LABEL: MetaTensor(labels[None].float(), affine=affine_tensor.clone()),
    }


class SynthPatchDataset(Dataset):
    """``volumes_per_epoch`` synthetic volumes per epoch, each returned as a list of patch dicts.

    Args:
        synth: the generator's settings.
        spacing: the network grid's voxel size, mm.
        normalise: the inference normalisation (a Compose over ``{"image": ...}``).
        sampler: the patch sampler (e.g. ``RandCropByLabelClassesd``); reseeded per item.
        seed: the run's seed.
    """

    def __init__(
        self, synth: SynthConfig, spacing: tuple[float, ...], normalise: Compose, sampler: MapTransform, seed: int
    ) -> None:
        if synth.volumes_per_epoch < 1:
            raise ValueError(f"data.synth.volumes_per_epoch: must be at least 1, got {synth.volumes_per_epoch}")
        self.synth = synth
        self.spacing = tuple(float(s) for s in spacing)
        self.normalise = normalise
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Volumes of a new epoch (call before iterating; workers get the value when they start)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.synth.volumes_per_epoch

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        seed = (self.seed, self.epoch, int(index))
        params = draw_params(self.synth, seed)
        source = source_for_contrast(params.contrast, self.synth.gm_wm_boundary)
        image, labels, affine = synthesize(source, params, self.synth.grid_shape, self.spacing)
        item = self.normalise(volume_item(image, labels, affine))
        self.sampler.set_random_state(seed=params.seed)
        patches = self.sampler(item)
        return patches if isinstance(patches, list) else [patches]
