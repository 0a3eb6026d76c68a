"""Fixtures shared by the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from predictor_helpers import tiny_config, trained_state, write_model_folder

from medseg.evaluation.calibration import save_calibration


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: the tiny networks run fastest so, and results do not depend on the core count."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The tiny UNet's weights, overfitted once per test module on a sphere."""
    return trained_state()


@pytest.fixture()
def folders(tmp_path: Path, state: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    """(own, member) model folders for ensembles: the member on a coarser grid, with other weights and its own
    temperature (1.6)."""
    own = write_model_folder(tmp_path / "own", state, tiny_config(transforms__spacing=[1.5, 1.5, 1.5]))
    member = write_model_folder(tmp_path / "coarse", trained_state(steps=40, seed=1),
                                tiny_config(transforms__spacing=[2.0, 2.0, 2.0]))
    save_calibration(member, 1.6, 0.1, 0.05)
    return own, member
