"""Tiny sample data sets, built once per test session (real files, real MONAI transforms)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_helpers import TINY_BRAIN, TINY_CT, write_definition


@pytest.fixture(scope="session")
def brain_definition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_definition(tmp_path_factory.mktemp("brain-def"), TINY_BRAIN)


@pytest.fixture(scope="session")
def brain_dataset(brain_definition: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny brain sample (do not modify the folder)."""
    from medseg.data.build import build_sample

    return build_sample(brain_definition, tmp_path_factory.mktemp("brain") / "out")


@pytest.fixture(scope="session")
def ct_definition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_definition(tmp_path_factory.mktemp("ct-def"), TINY_CT)


@pytest.fixture(scope="session")
def ct_dataset(ct_definition: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny CT phantom sample (do not modify the folder)."""
    from medseg.data.build import build_sample

    return build_sample(ct_definition, tmp_path_factory.mktemp("ct") / "out")
