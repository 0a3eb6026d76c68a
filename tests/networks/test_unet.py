"""MONAI UNet / DynUNet through the registry: shapes and a bounded overfit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import build_network


def test_unet_keeps_the_input_size() -> None:
    network = build_network(
        NetworkConfig(name="unet", in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2))
    )
    with torch.no_grad():
        assert network(torch.zeros(2, 1, 16, 24, 32)).shape == (2, 3, 16, 24, 32)


def test_group_norm_uses_groups_that_divide_the_channels() -> None:
    network = build_network(NetworkConfig(name="unet", out_channels=4, channels=(12, 24), strides=(2,), norm="group"))
    groups = {m.num_groups for m in network.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {4}


def test_dynunet_keeps_the_input_size_and_needs_three_levels() -> None:
    network = build_network(NetworkConfig(name="dynunet", out_channels=3, channels=(4, 8, 16), strides=(2, 2)))
    with torch.no_grad():
        assert network.eval()(torch.zeros(1, 1, 16, 24, 32)).shape == (1, 3, 16, 24, 32)
    with pytest.raises(ConfigError, match="at least 3 levels"):
        build_network(NetworkConfig(name="dynunet", channels=(4, 8), strides=(2,)))


def test_unet_overfits_one_sphere(
    make_sphere: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    overfit_run: Callable[..., tuple[float, int]],
) -> None:
    image, labels = make_sphere(size=32, radius=9)
    config = NetworkConfig(name="unet", channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch")
    dice, steps = overfit_run(build_network(config), image, labels, max_steps=100)
    assert dice > 0.9, f"Dice {dice:.3f} after {steps} steps"
