"""Fixtures for the research tests: few threads and the tiny sphere data set of the training tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_helpers import tiny_config_dict, write_tiny_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    """The test machine has two cores shared with other jobs."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny sphere data set (shared by the session; read only)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_config_file(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A tiny UNet experiment YAML (2 epochs, validation every epoch)."""
    import yaml

    data = tiny_config_dict(tiny_dataset)
    data["train"]["val_every"] = 1
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
