"""MONAI UNet / DynUNet through the registry: shapes and a bounded overfit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from medseg.config import NetworkConfig
from medseg.networks import build_network


def test_unet_keeps_the_input_size() -> None:
    network = build_network(NetworkConfig(name="unet", in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2)))
    with torch.no_grad():
        assert network(torch.zeros(2, 1, 16, 24, 32)).shape == (2, 3, 16, 24, 32)


def test_group_norm_uses_groups_that_divide_the_channels() -> None:
    network = build_network(NetworkConfig(name="unet", channels=(12, 24), strides=(2,), norm="group"))
    groups = {m.num_groups for m in network.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {4}


@pytest.mark.parametrize(
    "config",
    [
        NetworkConfig(name="unet", channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch"),
        NetworkConfig(name="dynunet", channels=(4, 8, 16), strides=(2, 2), num_res_units=0, norm="instance"),
    ],
    ids=["unet", "dynunet"],
)
def test_overfits_one_sphere(
    config: NetworkConfig,
    make_sphere: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    overfit_run: Callable[..., tuple[float, int]],
) -> None:
    image, labels = make_sphere(size=32, radius=9)
    dice, steps = overfit_run(build_network(config), image, labels, max_steps=100)
    assert dice > 0.9, f"Dice {dice:.3f} after {steps} steps"
