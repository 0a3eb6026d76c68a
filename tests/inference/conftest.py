"""Fixtures shared by the inference tests."""

from __future__ import annotations

import pytest
import torch
from predictor_helpers import trained_state


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: the tiny networks run fastest so, and results do not depend on the core count."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The tiny UNet's weights, overfitted once per test module on a sphere."""
    return trained_state()
