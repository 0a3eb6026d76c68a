"""The config's inference preprocessing (orientation, spacing, normalisation) applied to an in-memory Volume.

The ``"infer"`` chain of ``medseg.transforms`` starts by reading files (``LoadCased``); the
predictor already holds a ``Volume``, so it runs the same chain minus that first step on a
MetaTensor carrying the volume's affine. The steps are not rebuilt here: whatever the chain
does in training and validation, inference does too.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from medseg.config import ExperimentConfig
from medseg.transforms import IMAGE, LoadCased, build_transforms
from medseg.types import Volume


def preprocessing_chain(config: ExperimentConfig, channel_names: tuple[str, ...]) -> Compose:
    """The ``"infer"`` chain without its file-reading first step (a Compose over ``{"image": ...}`` dicts)."""
    chain = build_transforms("infer", config, channel_names)
    steps = list(chain.transforms)
    if not steps or not isinstance(steps[0], LoadCased):
        raise RuntimeError("medseg.transforms: the infer chain no longer starts with LoadCased; update preprocess.py")
    return Compose(steps[1:])


def volume_to_metatensor(volume: Volume) -> MetaTensor:
    """(C, I, J, K) float32 MetaTensor with the volume's voxel -> RAS affine (as ``LoadCased`` makes it)."""
    affine = torch.as_tensor(np.asarray(volume.affine, dtype=np.float64))
    meta = {
        "filename_or_obj": volume.source.path or "memory",
        "original_affine": affine.clone(),
        "spatial_shape": np.asarray(volume.spatial_shape),
        "original_channel_dim": 0,
    }
    # A copy: the normalisation works in place and must never change the caller's volume.
    array = torch.tensor(np.asarray(volume.array), dtype=torch.float32)
    return MetaTensor(array, affine=affine, meta=meta)


def preprocess_volume(volume: Volume, config: ExperimentConfig) -> MetaTensor:
    """Orientation, resampling and normalisation of ``volume`` as the config's infer chain does them.

    Args:
        volume: (C, I, J, K) scan in source units.
        config: the experiment the model was trained with.

    Returns:
        MetaTensor (C, I', J', K') float32 on the network's grid; ``.affine`` is its voxel -> RAS map.
    """
    chain = preprocessing_chain(config, volume.channel_names)
    return chain({IMAGE: volume_to_metatensor(volume)})[IMAGE]


def box_on_network_grid(box: tuple[slice, ...], source_affine: np.ndarray, grid_affine: np.ndarray,
                        grid_shape: tuple[int, ...], pad: int = 1) -> tuple[slice, ...]:
    """The network-grid voxels covering a box of source voxels, ``pad`` more per side (clipped to the grid).

    Args:
        box: (I, J, K) slices with integer starts and stops on the source grid.
        source_affine, grid_affine: (4, 4) voxel -> RAS maps of the source and network grids.
        grid_shape: the network grid's (I', J', K').
        pad: extra grid voxels per side (1 covers the trilinear interpolation back to the source grid).
    """
    corners = np.array([[*point, 1.0] for point in np.ndindex(2, 2, 2)], dtype=np.float64)
    for axis, part in enumerate(box):
        corners[:, axis] = np.where(corners[:, axis] > 0, part.stop - 1, part.start)
    grid = (np.linalg.inv(np.asarray(grid_affine, np.float64)) @ np.asarray(source_affine, np.float64)
            @ corners.T)[:3]
    low = np.floor(grid.min(axis=1)).astype(int) - pad
    high = np.ceil(grid.max(axis=1)).astype(int) + 1 + pad
    return tuple(slice(int(max(lo, 0)), int(min(hi, n))) for lo, hi, n in zip(low, high, grid_shape))
