"""Typed, frozen configs loaded from plain YAML; unknown keys and wrong types raise ConfigError.

Every config is a frozen dataclass. ``load_config(cls, mapping)`` builds one from
plain data (nested dataclasses, tuples, literals), naming the exact key at fault.
YAML is always read with ``yaml.safe_load``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from medseg.errors import ConfigError

ConfigT = TypeVar("ConfigT")

DEFAULT_MAX_VOXELS = 1024 * 1024 * 1024  # 1 Gi voxels per channel: a 1024^3 volume


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled data lives and how scans are read.

    Attributes:
        dataset_json: a Decathlon-style ``dataset.json`` (its folder is the data root).
        modalities: channel names in input order; empty = take them from dataset.json.
        max_voxels: refuse any scan with more voxels per channel than this (checked before allocating).
        cache_dir: folder for preprocessed-volume caches; empty = no persistent cache.
    """

    dataset_json: str = ""
    modalities: tuple[str, ...] = ()
    max_voxels: int = DEFAULT_MAX_VOXELS
    cache_dir: str = ""


@dataclass(frozen=True)
class NetworkConfig:
    """A network chosen by name from ``medseg.networks`` and its hyperparameters.

    Attributes:
        name: registry name, e.g. ``"unet"`` or ``"deepmedic"``.
        in_channels: input channels (modalities); output channels = number of labels incl. background.
        out_channels: classes including background.
        channels: feature maps per level (UNet) or per normal-pathway layer (DeepMedic).
        strides: down-sampling strides between UNet levels.
        num_res_units: residual units per UNet block (0 = plain conv blocks).
        norm: ``"batch"``, ``"instance"`` or ``"group"``.
        dropout: dropout probability.
    """

    name: str = "unet"
    in_channels: int = 1
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2
    norm: str = "instance"
    dropout: float = 0.0


@dataclass(frozen=True)
class LossConfig:
    """A MONAI loss by name with its imbalance options.

    Attributes:
        name: ``"dice"``, ``"dice_ce"``, ``"generalized_dice"`` or ``"dice_focal"``.
        include_background: whether the background class counts in the Dice term.
        class_weights: optional per-class weights (length = out_channels) for the CE/focal term.
    """

    name: str = "dice_ce"
    include_background: bool = False
    class_weights: tuple[float, ...] = ()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[ConfigT], data: dict[str, Any] | None, where: str = "") -> ConfigT:
    """Build the frozen dataclass ``cls`` from plain data.

    Args:
        cls: a dataclass type whose fields may be nested dataclasses, tuples, literals or scalars.
        data: the mapping (missing keys take the defaults).
        where: the key path so far, for messages (e.g. ``"train.optimizer"``).

    Raises:
        ConfigError: naming the key, for unknown keys and values of the wrong type.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or cls.__name__}: {error}") from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``hint`` and convert lists to tuples."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return load_config(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(option, value, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(c) for c in get_args(hint))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, item, f"{key}[{i}]") for i, (a, item) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (lists, not tuples) for writing a resolved config to YAML."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


