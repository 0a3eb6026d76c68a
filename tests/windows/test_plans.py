"""Window plans: which plan a model gets, how the budget shapes it, and the 8 GB promise for a 512x512x1000 CT."""

from __future__ import annotations

import math

import pytest

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import network_geometry
from medseg.windows import DEFAULT_BUDGET_BYTES, auto_plan_name, available_plans, choose_plan

CT = (512, 512, 1000)
GB = 2**30


def _unet(**changes: object) -> NetworkConfig:
    values = {"name": "unet", "out_channels": 4, "channels": (16, 32, 64, 128), "strides": (2, 2, 2),
              "num_res_units": 1, "norm": "batch", "window_size": (96, 96, 96)}
    values.update(changes)
    return NetworkConfig(**values)


def test_auto_plan_per_network() -> None:
    deepmedic = NetworkConfig(name="deepmedic", out_channels=4)
    cases = {
        "running": (_unet(norm_statistics="running"), "whole"),
        "window": (_unet(norm_statistics="window"), "windows"),  # measured: whole-volume statistics hurt real heads
        "instance": (_unet(norm="instance"), "windows"),
        "deepmedic": (deepmedic, "segments"),
    }
    for name, (config, expected) in cases.items():
        assert auto_plan_name(config, network_geometry(config)) == expected, name
    assert available_plans() == ("auto", "windows", "whole", "segments", "monai")


def test_whole_plan_is_one_forward_when_it_fits_and_large_windows_when_not() -> None:
    config = _unet(norm_statistics="running")
    geometry = network_geometry(config)
    one = choose_plan("auto", config, geometry, (91, 109, 91), overlap=0.25)
    assert (one.kind, one.window, one.forwards, one.overlap) == ("whole", (96, 112, 96), 1, 0.0)
    tight = choose_plan("auto", config, geometry, (91, 109, 91), overlap=0.25, budget_bytes=one.estimated_bytes - 1)
    assert tight.kind == "windows" and tight.forwards > 1 and tight.estimated_bytes <= one.estimated_bytes - 1
    assert all(side % 8 == 0 and side > 48 for side in tight.window)  # few large windows, on the UNet's grid
    assert tight.overlap < 0.25  # overlap only to hide borders


def test_ct_512x512x1000_fits_8_gb_by_the_plans_own_estimate() -> None:
    for config in (_unet(norm="instance", window_size=(112, 96, 32)), _unet(norm_statistics="running"),
                   _unet(norm_statistics="window")):
        plan = choose_plan("auto", config, network_geometry(config), CT, overlap=0.25)
        assert plan.estimated_bytes <= DEFAULT_BUDGET_BYTES < 8 * GB, (config.norm, plan)
        if config.norm == "batch" and config.norm_statistics == "running":
            assert plan.kind == "windows" and plan.forwards < 200  # whole does not fit: large windows instead
    deepmedic = NetworkConfig(name="deepmedic", out_channels=4)  # float32 logits of the CT alone take 4.2 GB
    plan = choose_plan("auto", deepmedic, network_geometry(deepmedic), CT, overlap=0.25, budget_bytes=8 * GB)
    assert plan.kind == "segments" and plan.estimated_bytes <= 8 * GB
    assert all(side % 3 == 0 and side >= 45 for side in plan.window)  # DeepMedic's inference segments or larger


def test_deepmedic_whole_brain_is_one_segment() -> None:
    deepmedic = NetworkConfig(name="deepmedic", out_channels=4)
    plan = choose_plan("auto", deepmedic, network_geometry(deepmedic), (91, 109, 91), overlap=0.25)
    assert (plan.kind, plan.window, plan.forwards) == ("segments", (93, 111, 93), 1)
    small = choose_plan("segments", deepmedic, network_geometry(deepmedic), (91, 109, 91), overlap=0.25,
                        budget_bytes=plan.estimated_bytes // 2)
    assert small.forwards == math.prod(-(-n // s) for n, s in zip((93, 111, 93), small.window)) > 1


def test_bad_plans_are_refused() -> None:
    config = _unet()
    geometry = network_geometry(config)
    with pytest.raises(ConfigError, match="not one of"):
        choose_plan("fastest", config, geometry, (64, 64, 64), overlap=0.25)
    with pytest.raises(ConfigError, match="valid-convolution|same-size"):
        choose_plan("segments", config, geometry, (64, 64, 64), overlap=0.25)
    with pytest.raises(ConfigError, match="raise the budget"):
        choose_plan("whole", config, geometry, (64, 64, 64), overlap=0.25, budget_bytes=1000)
