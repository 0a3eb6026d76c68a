"""Sample data set definitions: the bundled YAML files load; bad keys and values raise ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medseg.data.sample_config import (
    BrainSampleConfig,
    CtPhantomConfig,
    load_sample_definition,
)
from medseg.errors import ConfigError

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def _write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_bundled_brain_definition_loads() -> None:
    config = load_sample_definition(DATASETS / "brain-tissue.yaml")
    assert isinstance(config, BrainSampleConfig)
    assert (config.n_train, config.n_test, config.template_downsample) == (10, 2, 2)
    assert config.augment.spacings[2] == (1.5, 1.5, 3.5)
    assert config.augment.elastic_sigma_mm == (10.0, 16.0)
    assert "LPS" in config.augment.orientations
    assert config.dicom_cases == (0,)


def test_bundled_ct_definition_loads() -> None:
    config = load_sample_definition(DATASETS / "ct-phantom.yaml")
    assert isinstance(config, CtPhantomConfig)
    assert config.spacing == (0.8, 0.8, 2.5)
    assert config.shape == (112, 96, 32)
    assert (config.n_train, config.n_test) == (6, 2)


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, {"kind": "ct-phantom", "n_trian": 3})
    with pytest.raises(ConfigError, match=r"def\.yaml.*unknown key 'n_trian'"):
        load_sample_definition(path)


def test_unknown_nested_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, {"kind": "brain-tissue", "augment": {"rotation": 5}})
    with pytest.raises(ConfigError, match=r"unknown key 'augment\.rotation'"):
        load_sample_definition(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"name": "x"}, "'kind' must be one of"),
        ({"kind": "mri"}, "'kind' must be one of"),
        ({"kind": "ct-phantom", "seed": "seven"}, "seed: expected an integer"),
        ({"kind": "ct-phantom", "spacing": [1, 1]}, "spacing: expected 3 items"),
        ({"kind": "ct-phantom", "n_train": 0}, "n_train >= 1"),
        ({"kind": "brain-tissue", "n_train": 2, "n_test": 1, "dicom_cases": [3]}, "dicom_cases"),
        ({"kind": "brain-tissue", "template_downsample": 8}, "template_downsample"),
        ({"kind": "brain-tissue", "augment": {"spacings": [[2, 2]]}}, r"augment\.spacings\[0\]"),
    ],
)
def test_invalid_definitions_raise(tmp_path: Path, content: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sample_definition(_write(tmp_path, content))


def test_missing_definition_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_sample_definition(tmp_path / "nothere.yaml")
