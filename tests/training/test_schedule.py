"""Optimisers by name and the warm-up + decay schedule, with exact values."""

from __future__ import annotations

import math

import pytest
import torch

from medseg.config import OptimizerConfig, ScheduleConfig
from medseg.errors import ConfigError
from medseg.training.schedule import build_optimizer, build_scheduler, lr_factor


def test_linear_warmup_then_cosine_to_the_floor() -> None:
    config = ScheduleConfig(name="cosine", warmup_iterations=4, min_lr_factor=0.1)
    factors = [lr_factor(step, 14, config) for step in range(15)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0)  # decay starts at the end of warm-up
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the 10 decay steps
    assert factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))


def test_poly_and_constant() -> None:
    poly = ScheduleConfig(name="poly", poly_power=0.9)
    assert lr_factor(0, 10, poly) == pytest.approx(1.0)
    assert lr_factor(5, 10, poly) == pytest.approx(0.5**0.9)
    assert lr_factor(10, 10, poly) == pytest.approx(0.0)
    assert lr_factor(7, 10, ScheduleConfig(name="constant", warmup_iterations=2)) == 1.0


def test_scheduler_drives_the_optimiser_per_iteration() -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = build_optimizer([weight], OptimizerConfig(name="adamw", lr=0.2), lr_factor=0.5)
    scheduler = build_scheduler(optimizer, total_steps=6, config=ScheduleConfig(name="cosine", warmup_iterations=2))
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = 0.1
    expected = [peak * 0.5, peak] + [peak * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]
    assert lrs == pytest.approx(expected)


def test_optimisers_by_name() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    sgd = build_optimizer([weight], OptimizerConfig(name="sgd", lr=0.01, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] is True and sgd.param_groups[0]["momentum"] == 0.9
    assert isinstance(build_optimizer([weight], OptimizerConfig(name="adam")), torch.optim.Adam)
    assert type(build_optimizer([weight], OptimizerConfig())) is torch.optim.AdamW
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    assert len(build_optimizer([weight, frozen], OptimizerConfig()).param_groups[0]["params"]) == 1
    with pytest.raises(ConfigError, match="train.optimizer.lr"):
        build_optimizer([weight], OptimizerConfig(lr=0.0))
