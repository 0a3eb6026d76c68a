"""Config loading: typed values, defaults, unknown keys and wrong types name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from medseg.config import (
    DataConfig,
    LossConfig,
    NetworkConfig,
    config_to_dict,
    load_config,
    load_yaml,
)
from medseg.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    mode: Literal["cosine", "poly"] = "cosine"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    optional: int | None = None


def test_defaults_and_nested_values() -> None:
    config = load_config(Outer, {"sizes": [3, 4, 5], "inner": {"rate": 1, "mode": "poly"}})
    assert config.sizes == (3, 4, 5)
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float)
    assert config.inner.mode == "poly"
    assert config.optional is None
    assert load_config(Outer, {"optional": 7}).optional == 7


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "y"}, "unknown key 'nmae'"),
        ({"inner": {"rte": 1}}, "unknown key 'inner.rte'"),
        ({"inner": {"mode": "linear"}}, "inner.mode: 'linear' is not one of 'cosine', 'poly'"),
        ({"inner": {"rate": "fast"}}, "inner.rate: expected a number"),
        ({"sizes": [1, "two"]}, "sizes[1]: expected an integer"),
        ({"sizes": 3}, "sizes: expected a list"),
        ({"name": 5}, "name: expected a string"),
        ({"inner": {"rate": True}}, "inner.rate: expected a number"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        load_config(Outer, data)
    assert message in str(raised.value)


def test_project_configs_round_trip() -> None:
    for config_class in (DataConfig, NetworkConfig, LossConfig):
        config = config_class()
        assert load_config(config_class, config_to_dict(config)) == config


def test_load_yaml_is_safe_and_names_the_file(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="unsafe.yaml: not valid YAML"):
        load_yaml(unsafe)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml: the top level must be a mapping"):
        load_yaml(listing)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read config"):
        load_yaml(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}
