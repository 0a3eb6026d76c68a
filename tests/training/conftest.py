"""Fixtures for the training tests: few threads, a tiny sphere data set shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training_helpers import write_tiny_dataset


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    """The test machine has two cores shared with other jobs."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny sphere data set (shared by the session; read only)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))
