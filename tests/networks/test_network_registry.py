"""The network registry: names, errors, geometry and its overrides."""

from __future__ import annotations

import pytest
import torch

from medseg.config import NetworkConfig, load_config
from medseg.errors import ConfigError
from medseg.networks import (
    available_networks,
    build_network,
    get_network_spec,
    network_geometry,
)


def test_available_networks_are_the_registry_names() -> None:
    assert available_networks() == ("unet", "dynunet", "deepmedic")
    for name in available_networks():
        assert get_network_spec(name).name == name


def test_unknown_network_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown network 'vnet' \(choices: unet, dynunet, deepmedic\)"):
        build_network(NetworkConfig(name="vnet"))
    with pytest.raises(ConfigError, match="choices"):
        network_geometry(NetworkConfig(name="vnet"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"out_channels": 1}, "at least 2 classes"),
        ({"in_channels": 0}, "at least 1 input channel"),
        ({"strides": (2,)}, "one stride per down-sampling"),
        ({"norm": "layer"}, "not one of batch, instance, group"),
        ({"dropout": 1.0}, r"in \[0, 1\)"),
    ],
)
def test_bad_unet_hyperparameters_raise(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_network(NetworkConfig(name="unet", **changes))


def test_bad_deepmedic_hyperparameters_raise() -> None:
    with pytest.raises(ConfigError, match=r"\[2\] outside 3..8"):
        build_network(NetworkConfig(name="deepmedic", deepmedic_residual_layers=(2, 4)))
    with pytest.raises(ConfigError, match="deepmedic_downsample"):
        build_network(NetworkConfig(name="deepmedic", deepmedic_downsample=0))


def test_default_geometry() -> None:
    unet = network_geometry(NetworkConfig(name="unet"))
    assert (unet.train_patch, unet.infer_window, unet.margin, unet.align) == ((64,) * 3, (96,) * 3, 0, 1)
    deepmedic = network_geometry(NetworkConfig(name="deepmedic"))
    assert (deepmedic.train_patch, deepmedic.infer_window, deepmedic.margin, deepmedic.align) == (
        (57,) * 3,
        (45,) * 3,
        24,
        3,
    )
    assert deepmedic.train_output == (9, 9, 9)
    assert deepmedic.infer_input == (93, 93, 93)


def test_geometry_overrides_from_yaml_data() -> None:
    config = load_config(NetworkConfig, {"name": "deepmedic", "patch_size": [60], "window_size": [30, 33, 36]})
    geometry = network_geometry(config)
    assert geometry.train_patch == (60, 60, 60)
    assert geometry.train_output == (12, 12, 12)
    assert geometry.infer_window == (30, 33, 36)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "deepmedic", "patch_size": (48,)}, "at least 49 voxels"),
        ({"name": "deepmedic", "window_size": (44,)}, "multiples of 3"),
        ({"name": "unet", "patch_size": (60, 64, 64)}, "multiple of 8"),
        ({"name": "unet", "window_size": (96, 96)}, "1 or 3 sizes"),
    ],
)
def test_bad_geometry_overrides_raise(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        network_geometry(NetworkConfig(**changes))


@pytest.mark.parametrize("name", ["unet", "dynunet", "deepmedic"])
def test_channels_follow_the_config(name: str) -> None:
    config = NetworkConfig(
        name=name,
        in_channels=2,
        out_channels=4,
        channels=(4, 8, 16),
        strides=(2, 2),
        deepmedic_channels=(2,) * 8,
        deepmedic_fc_channels=(4,),
    )
    geometry = network_geometry(config)
    network = build_network(config).eval()
    size = 16 if geometry.margin == 0 else 2 * geometry.margin + 2
    with torch.no_grad():
        out = network(torch.zeros(1, 2, size, size, size))
    assert out.shape == (1, 4) + (size - 2 * geometry.margin,) * 3
