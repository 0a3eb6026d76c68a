"""Optimisers by name and the learning-rate schedule: linear warm-up, then cosine or poly decay."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from medseg.config import OptimizerConfig, ScheduleConfig
from medseg.errors import ConfigError


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter], config: OptimizerConfig, lr_factor: float = 1.0
) -> torch.optim.Optimizer:
    """AdamW (default), Adam, or SGD with (Nesterov) momentum, at ``config.lr * lr_factor``.

    Raises:
        ConfigError: a non-positive learning rate.
    """
    lr = config.lr * lr_factor
    if lr <= 0 or not math.isfinite(lr):
        raise ConfigError(f"train.optimizer.lr: must be a positive number, got {config.lr}")
    params = [p for p in parameters if p.requires_grad]
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    raise ConfigError(f"train.optimizer.name: unknown optimiser '{config.name}' (choose adamw, adam or sgd)")


def lr_factor(step: int, total_steps: int, config: ScheduleConfig) -> float:
    """Multiplier of the peak learning rate before optimiser step ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup_iterations`` steps. Then with
    ``t`` = fraction of the remaining steps done (0 at the end of warm-up, 1 at the end):
    cosine ``m + (1 - m) * (1 + cos(pi t)) / 2``, poly ``m + (1 - m) * (1 - t) ** power``,
    constant ``1``; ``m = min_lr_factor``.
    """
    warmup = max(config.warmup_iterations, 0)
    if step < warmup:
        return (step + 1) / warmup
    if config.name == "constant":
        return 1.0
    decay_steps = max(total_steps - warmup, 1)
    t = min(max((step - warmup) / decay_steps, 0.0), 1.0)
    floor = config.min_lr_factor
    if config.name == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    if config.name == "poly":
        return floor + (1.0 - floor) * (1.0 - t) ** config.poly_power
    raise ConfigError(f"train.schedule.name: unknown schedule '{config.name}' (choose cosine, poly or constant)")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, config: ScheduleConfig) -> LambdaLR:
    """A per-iteration LambdaLR following ``lr_factor``; its state_dict holds only numbers."""
    if config.name not in ("cosine", "poly", "constant"):
        raise ConfigError(f"train.schedule.name: unknown schedule '{config.name}' (choose cosine, poly or constant)")

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, config)

    return LambdaLR(optimizer, lr_lambda=factor)
