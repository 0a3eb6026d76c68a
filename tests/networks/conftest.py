"""Shared helpers for the network tests: a synthetic sphere and a bounded overfitting run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from medseg.config import LossConfig
from medseg.training.losses import build_loss


def sphere_case(size: int, radius: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy bright sphere in the centre of a ``size``^3 volume.

    Returns:
        image (1, 1, size, size, size) float32 and labels (1, 1, size, size, size) int64 in {0, 1}.
    """
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"))
    mask = (grid**2).sum(0) <= radius**2
    generator = torch.Generator().manual_seed(seed)
    image = mask.float() + 0.3 * torch.randn(mask.shape, generator=generator)
    return image[None, None], mask.long()[None, None]


def foreground_dice(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Dice of class 1 between argmax(logits) (B, K, ...) and labels (B, 1, ...)."""
    predicted = logits.argmax(1, keepdim=True) == 1
    truth = labels == 1
    return float(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))


def overfit(
    network: nn.Module, image: torch.Tensor, labels: torch.Tensor, max_steps: int, lr: float = 1e-2
) -> tuple[float, int]:
    """Train with Adam + Dice-CE on one case; stop once the eval-mode Dice (checked every 5 steps) passes 0.9.

    Returns:
        (best eval-mode foreground Dice, steps taken).
    """
    loss_function = build_loss(LossConfig(name="dice_ce"), out_channels=2)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    best = 0.0
    for step in range(1, max_steps + 1):
        network.train()
        optimizer.zero_grad()
        loss = loss_function(network(image), labels)
        loss.backward()
        optimizer.step()
        if step % 5 == 0:
            network.eval()
            with torch.no_grad():
                best = max(best, foreground_dice(network(image), labels))
            if best > 0.9:
                return best, step
    return best, max_steps


@pytest.fixture
def overfit_run() -> Callable[..., tuple[float, int]]:
    torch.manual_seed(0)
    return overfit


@pytest.fixture
def make_sphere() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    return sphere_case
