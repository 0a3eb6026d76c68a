"""The one list of networks medseg can build; the CLI's choices come from ``available_networks()``."""

from __future__ import annotations

from torch import nn

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import deepmedic, unet
from medseg.networks.spec import NetworkGeometry, NetworkSpec

_SPECS: dict[str, NetworkSpec] = {spec.name: spec for spec in (*unet.SPECS, deepmedic.SPEC)}


def available_networks() -> tuple[str, ...]:
    """Registered network names, in registry order (``("unet", "dynunet", "deepmedic")``)."""
    return tuple(_SPECS)


def get_network_spec(name: str) -> NetworkSpec:
    """The spec registered under ``name``; ConfigError listing the choices otherwise."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(
            f"network.name: unknown network {name!r} (choices: {', '.join(available_networks())})"
        ) from None


def _check_counts(config: NetworkConfig) -> None:
    if config.in_channels < 1:
        raise ConfigError(f"network.in_channels: need at least 1 input channel (modality), got {config.in_channels}")
    if config.out_channels < 2:
        raise ConfigError(
            f"network.out_channels: need at least 2 classes (background + one label), got {config.out_channels}"
        )


def build_network(config: NetworkConfig) -> nn.Module:
    """Build the network named ``config.name``.

    Shapes: ``(B, in_channels, X, Y, Z)`` -> logits ``(B, out_channels, X - 2m, Y - 2m, Z - 2m)``,
    ``m = network_geometry(config).margin`` (0 for UNet and DynUNet).

    Raises:
        ConfigError: unknown name (listing the choices) or hyperparameters that do not fit together.
    """
    spec = get_network_spec(config.name)
    _check_counts(config)
    return spec.builder(config)


def network_geometry(config: NetworkConfig) -> NetworkGeometry:
    """Training patch, inference window, margin and alignment for ``config``.

    ``config.patch_size`` (an input patch) and ``config.window_size`` (an output window) override the
    network's defaults; both are checked against what the network can take.

    Raises:
        ConfigError: unknown name, or an override the network cannot use.
    """
    spec = get_network_spec(config.name)
    geometry = spec.geometry(config)
    train_patch = geometry.train_patch
    if config.patch_size:
        train_patch = _three(config.patch_size, "network.patch_size")
    spec.check_patch(config, train_patch)
    infer_window = geometry.infer_window
    if config.window_size:
        infer_window = _three(config.window_size, "network.window_size")
    if any(side < 1 or side % geometry.align for side in infer_window):
        raise ConfigError(
            f"network.window_size: {list(infer_window)} must be positive multiples of {geometry.align} "
            f"for {config.name}"
        )
    spec.check_patch(config, tuple(side + 2 * geometry.margin for side in infer_window))
    return NetworkGeometry(train_patch, infer_window, geometry.margin, geometry.align)


def _three(size: tuple[int, ...], key: str) -> tuple[int, int, int]:
    """A size given as one int or three ints, as a 3-tuple."""
    if len(size) == 1:
        return (size[0],) * 3
    if len(size) != 3:
        raise ConfigError(f"{key}: give 1 or 3 sizes, got {list(size)}")
    return (size[0], size[1], size[2])
