"""Tiny sample data sets, built once per test session (real files, real MONAI transforms)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_BRAIN = {
    "kind": "brain-tissue",
    "name": "brain-tiny",
    "description": "tiny brain sample for tests",
    "seed": 7,
    "n_train": 2,
    "n_test": 1,
    "template_downsample": 3,
    "margin_mm": 6.0,
    "dicom_cases": [0],
    "augment": {
        "spacings": [[3.0, 3.0, 3.0], [2.5, 2.5, 4.0]],
        "orientations": ["RAS", "LPS", "LIA"],
    },
}
TINY_CT = {
    "kind": "ct-phantom",
    "name": "ct-tiny",
    "description": "tiny CT phantom for tests",
    "seed": 11,
    "n_train": 2,
    "n_test": 1,
    "shape": [64, 56, 24],
    "spacing": [1.2, 1.2, 2.5],
    "dicom_cases": [0],
}


def write_definition(folder: Path, content: dict, name: str = "definition.yaml") -> Path:
    """Write a definition YAML into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def brain_definition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_definition(tmp_path_factory.mktemp("brain-def"), TINY_BRAIN)


@pytest.fixture(scope="session")
def brain_dataset(brain_definition: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny brain sample (do not modify the folder)."""
    from medseg.data.sample_build import build_sample

    return build_sample(brain_definition, tmp_path_factory.mktemp("brain") / "out")


@pytest.fixture(scope="session")
def ct_definition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_definition(tmp_path_factory.mktemp("ct-def"), TINY_CT)


@pytest.fixture(scope="session")
def ct_dataset(ct_definition: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of the tiny CT phantom sample (do not modify the folder)."""
    from medseg.data.sample_build import build_sample

    return build_sample(ct_definition, tmp_path_factory.mktemp("ct") / "out")
