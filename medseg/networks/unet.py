"""MONAI's UNet and DynUNet, built from a ``NetworkConfig``.

Both give an output the size of the input (margin 0); every input side must be a
multiple of the product of the strides.
"""

from __future__ import annotations

import math

from monai.networks.nets import DynUNet, UNet
from torch import nn

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks.spec import NetworkGeometry, NetworkSpec

NORMS = ("batch", "instance", "group")

# Defaults for the bundled brain sample (~96^3 voxels at 2 mm): 64^3 training patches keep a CPU
# step short; 96^3 inference windows cover a whole 2 mm head in one or a few windows.
DEFAULT_TRAIN_PATCH = (64, 64, 64)
DEFAULT_INFER_WINDOW = (96, 96, 96)


def _check_levels(config: NetworkConfig) -> None:
    """Raise ConfigError unless channels, strides, norm and dropout fit together."""
    if len(config.channels) < 2:
        raise ConfigError(f"network.channels: {config.name} needs at least 2 levels, got {list(config.channels)}")
    if len(config.strides) != len(config.channels) - 1:
        raise ConfigError(
            f"network.strides: {config.name} needs one stride per down-sampling "
            f"(len(channels) - 1 = {len(config.channels) - 1}), got {list(config.strides)}"
        )
    if any(c < 1 for c in config.channels) or any(s < 1 for s in config.strides):
        raise ConfigError(f"network.channels and network.strides must be positive integers for {config.name}")
    if config.norm not in NORMS:
        raise ConfigError(f"network.norm: {config.norm!r} is not one of {', '.join(NORMS)}")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"network.dropout: must be in [0, 1), got {config.dropout}")
    if config.num_res_units < 0:
        raise ConfigError(f"network.num_res_units: must be >= 0, got {config.num_res_units}")


def _norm(config: NetworkConfig) -> str | tuple[str, dict[str, int]]:
    """MONAI norm argument; group norm uses up to 8 groups dividing every level's channels and the
    output channels (MONAI's UNet also normalises its last up-sampling, which has ``out_channels``)."""
    if config.norm == "group":
        return ("group", {"num_groups": math.gcd(8, config.out_channels, *config.channels)})
    return config.norm


def build_unet(config: NetworkConfig) -> nn.Module:
    """MONAI ``UNet`` (3D): input ``(B, in_channels, X, Y, Z)`` -> logits ``(B, out_channels, X, Y, Z)``."""
    _check_levels(config)
    return UNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm=_norm(config),
        dropout=config.dropout,
    )


def build_dynunet(config: NetworkConfig) -> nn.Module:
    """MONAI ``DynUNet`` (nnU-Net style, 3x3x3 kernels): same shapes as ``build_unet``; needs >= 3 levels."""
    _check_levels(config)
    if len(config.channels) < 3:
        raise ConfigError(f"network.channels: dynunet needs at least 3 levels, got {list(config.channels)}")
    return DynUNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        kernel_size=[3] * len(config.channels),
        strides=[1, *config.strides],
        upsample_kernel_size=list(config.strides),
        filters=list(config.channels),
        dropout=config.dropout or None,
        norm_name=_norm(config),
        res_block=config.num_res_units > 0,
    )


def unet_geometry(config: NetworkConfig) -> NetworkGeometry:
    """Same-size output: margin 0; windows need no alignment."""
    return NetworkGeometry(DEFAULT_TRAIN_PATCH, DEFAULT_INFER_WINDOW, margin=0, align=1)


def check_unet_patch(config: NetworkConfig, size: tuple[int, ...]) -> None:
    """Raise ConfigError unless every side is a positive multiple of the product of the strides."""
    factor = math.prod(config.strides)
    if len(size) != 3 or any(s < factor or s % factor for s in size):
        raise ConfigError(
            f"{config.name}: patch/window {list(size)} must be 3 sides, each a multiple of {factor} "
            f"(the product of network.strides {list(config.strides)})"
        )


SPECS = (
    NetworkSpec(
        name="unet",
        description="MONAI UNet (residual units, same-size output)",
        builder=build_unet,
        geometry=unet_geometry,
        check_patch=check_unet_patch,
    ),
    NetworkSpec(
        name="dynunet",
        description="MONAI DynUNet (nnU-Net style, same-size output)",
        builder=build_dynunet,
        geometry=unet_geometry,
        check_patch=check_unet_patch,
    ),
)
