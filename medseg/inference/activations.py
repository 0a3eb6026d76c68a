"""What the network looks at: a chosen layer's activations for a whole scan, on the scan's grid.

A forward hook on the named layer captures its output while the scan goes through the network
once (no sliding window: whole-scan inputs are small for the sample models; ``max_voxels``
guards the rest). Feature maps that are smaller than the input are mapped back onto it by
their stride, estimated as ``round(input / feature)`` per axis (2, 4... in a UNet encoder, 1
or 3 in DeepMedic's pathways), upsampled by that factor (trilinear) and centred on the input,
which is exact for strided convolutions and for the centred crops of valid convolutions;
uncovered border voxels are 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from medseg.errors import InputError
from medseg.types import Volume

CONV_TYPES = (nn.Conv3d, nn.ConvTranspose3d)
DEFAULT_MAX_VOXELS = 256**3


@dataclass(frozen=True)
class Activations:
    """Some channels of one layer's output on the input grid.

    Attributes:
        layer: the layer's name (``network.named_modules()``).
        channels: the channel indices returned.
        total_channels: how many channels the layer has.
        array: (n, I, J, K) float32, one map per returned channel, on the input's grid.
        feature_shape: the layer's own spatial output shape.
    """

    layer: str
    channels: tuple[int, ...]
    total_channels: int
    array: np.ndarray
    feature_shape: tuple[int, int, int]


def layer_names(network: nn.Module) -> list[str]:
    """Names of the network's 3D convolution layers, in forward-definition order."""
    return [name for name, module in network.named_modules() if name and isinstance(module, CONV_TYPES)]


def normalise_intensity(image: np.ndarray) -> np.ndarray:
    """(C, I, J, K) -> float32 z-scores per channel over its non-zero voxels (MONAI's ``nonzero=True`` rule)."""
    result = np.zeros(image.shape, dtype=np.float32)
    for channel, values in enumerate(image):
        mask = values != 0
        if mask.any():
            mean, std = float(values[mask].mean()), float(values[mask].std())
            result[channel][mask] = (values[mask] - mean) / (std if std > 0 else 1.0)
    return result


def _to_input_grid(feature: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """(n, F0, F1, F2) feature maps -> (n, *shape), by stride estimate, trilinear upsampling and centring."""
    strides = [max(1, round(size / f)) for size, f in zip(shape, feature.shape[1:])]
    if any(s > 1 for s in strides):
        target = [f * s for f, s in zip(feature.shape[1:], strides)]
        feature = functional.interpolate(feature[None], size=target, mode="trilinear", align_corners=False)[0]
    result = torch.zeros((feature.shape[0], *shape), dtype=feature.dtype)
    source, target = [], []
    for size, f in zip(shape, feature.shape[1:]):
        offset = (size - f) // 2
        if offset >= 0:
            target.append(slice(offset, offset + f))
            source.append(slice(0, f))
        else:
            target.append(slice(0, size))
            source.append(slice(-offset, -offset + size))
    result[(slice(None), *target)] = feature[(slice(None), *source)]
    return result


def layer_activations(
    network: nn.Module,
    image: np.ndarray,
    layer: str,
    channels: Sequence[int] | None = None,
    *,
    max_channels: int = 4,
    align: int = 16,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    device: str | torch.device = "cpu",
) -> Activations:
    """Run ``image`` through ``network`` once and return some channels of ``layer``'s output.

    Args:
        network: the model (its mode is left unchanged; evaluation mode is expected).
        image: (C, I, J, K) network input (already normalised), C = the network's input channels.
        layer: a name from ``layer_names(network)``.
        channels: channel indices to return (those the layer lacks are dropped); default the first ``max_channels``.
        max_channels: at most this many channels are returned.
        align: the input is padded (edge values) to a multiple of this per axis (UNet strides),
            and by ``network.margin`` voxels per side when the network has one (valid convolutions).
        max_voxels: refuse larger inputs (the whole scan goes through at once).
        device: where to run.

    Returns:
        Activations with ``array`` (n, I, J, K) on the input's grid.

    Raises:
        InputError: unknown layer, bad channel indices, or an input too large.
    """
    modules = dict(network.named_modules())
    if layer not in modules or not layer:
        raise InputError(layer or "(no layer)", "is not a layer of this network",
                         f"choose one of layer_names(network), e.g. {', '.join(layer_names(network)[:3])}")
    shape = tuple(int(s) for s in image.shape[1:])
    if int(np.prod(shape)) > max_voxels:
        raise InputError("(scan)", f"{np.prod(shape):,} voxels are too many to run at once (max {max_voxels:,})",
                         "crop or downsample the scan first")
    margin = int(getattr(network, "margin", 0) or 0)  # valid-convolution networks (DeepMedic) lose this per side
    padded = [(-size) % align for size in shape]
    tensor = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32), device=device)[None]
    pad = [value for p in reversed(padded) for value in (margin, p + margin)]  # F.pad lists the last axis first
    if any(pad):
        tensor = functional.pad(tensor, pad, mode="replicate")
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor | tuple) -> None:
        captured.append((output[0] if isinstance(output, (tuple, list)) else output).detach())

    handle = modules[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            network(tensor)
    finally:
        handle.remove()
    feature = captured[0][0].float().cpu()  # (channels, F0, F1, F2)
    total = int(feature.shape[0])
    asked = tuple(range(min(max_channels, total))) if channels is None else tuple(int(c) for c in channels)
    chosen = tuple(c for c in asked if 0 <= c < total)  # channels beyond this layer's count are dropped
    if not chosen:
        raise InputError(layer, f"channels {list(asked)} outside 0..{total - 1}", "choose existing channels")
    chosen = chosen[:max_channels]
    mapped = _to_input_grid(feature[list(chosen)], tensor.shape[2:])
    array = mapped[(slice(None), *(slice(margin, margin + s) for s in shape))].numpy().astype(np.float32)
    return Activations(layer=layer, channels=chosen, total_channels=total, array=array,
                       feature_shape=tuple(int(s) for s in feature.shape[1:]))


def scan_activations(
    network: nn.Module,
    image: np.ndarray,
    layer: str,
    channels: Sequence[int] | None = None,
    *,
    preprocess: Callable[[np.ndarray], np.ndarray] = normalise_intensity,
    **options: object,
) -> Activations:
    """``layer_activations`` for a raw (C, I, J, K) scan array, normalised by ``preprocess`` first."""
    return layer_activations(network, preprocess(np.asarray(image)), layer, channels, **options)


def predictor_activations(
    predictor: Any, volume: Volume, layer: str, channels: Sequence[int] | None = None, **options: object
) -> Activations:
    """Activations exactly as the Predictor feeds the network, mapped back onto ``volume``'s grid.

    The scan goes through the model's own preprocessing (orientation, resampling, normalisation;
    ``medseg.inference.preprocess.preprocess_volume``); the maps, on that network grid, are
    resampled onto the source grid with MONAI's ``SpatialResample`` (bilinear, zeros outside).

    Args:
        predictor: a ``medseg.inference.predictor.Predictor``.
        volume: (C, I, J, K) scan.
        layer, channels, options: as for ``layer_activations``.

    Returns:
        Activations with ``array`` (n, I, J, K) on ``volume``'s grid.
    """
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    from medseg.inference.preprocess import preprocess_volume

    with torch.inference_mode():
        image = preprocess_volume(volume, predictor.config)
    grid_affine = torch.as_tensor(np.asarray(image.affine, dtype=np.float64))
    result = layer_activations(predictor.network, image.as_tensor().cpu().numpy(), layer, channels,
                               device=getattr(predictor, "device", "cpu"), **options)
    resample = SpatialResample(mode="bilinear", padding_mode="zeros", align_corners=False, dtype=torch.float32)
    moved = resample(MetaTensor(torch.from_numpy(result.array), affine=grid_affine),
                     dst_affine=torch.as_tensor(np.asarray(volume.affine, dtype=np.float64)),
                     spatial_size=volume.spatial_shape)
    return replace(result, array=moved.as_tensor().float().numpy())
