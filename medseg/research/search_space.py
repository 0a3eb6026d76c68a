"""The hyperparameter search space of ``medseg tune``: a typed YAML file, checked before any trial runs.

Example (``models/presets/brain-tissue-search.yaml``)::

    lr: [3.0e-4, 1.0e-2]          # log-uniform range of the learning rate AT base_batch_size
    base_batch_size: 2            # the batch size the lr range refers to (0 = the base config's)
    batch_size: [1, 2, 4]         # categorical; the trial's lr = lr * batch_size / base_batch_size
    patch_size: [48, 64]          # cubic training patch side lengths (voxels)
    loss: [dice_ce, dice_focal]   # loss names (medseg.training.losses.available_losses())
    width: [0.5, 1.0]             # multiplier of the base network's feature maps per level
    dropout: [0.0, 0.3]           # uniform range
    pruner: {startup_trials: 2, warmup_validations: 1}
    sampler_seed: 0
    random_trials: 4              # random proposals before Optuna's TPE sampler takes over

A key left out keeps the base config's value for that hyperparameter. Unknown keys raise ConfigError.

Batch size and learning rate move together by the linear scaling rule (Goyal et al. 2017,
"Accurate, Large Minibatch SGD"): the sampled ``lr`` is the rate for ``base_batch_size`` cases per
batch, and a trial with ``batch_size`` cases trains at ``lr * batch_size / base_batch_size``, so the
search compares batch sizes at the same per-sample step size instead of confounding the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medseg.config import ExperimentConfig, load_config, load_yaml
from medseg.errors import ConfigError
from medseg.networks import network_geometry
from medseg.training.losses import available_losses

# Parameter names as Optuna records them (and as results.csv columns).
PARAMS = ("lr", "batch_size", "patch_size", "loss", "width", "dropout")


@dataclass(frozen=True)
class PrunerConfig:
    """Optuna's MedianPruner: stop a trial whose validation Dice is below the median of earlier trials.

    Attributes:
        startup_trials: trials that always run to the end before pruning starts.
        warmup_validations: validations of a trial before it can be pruned.
        enabled: ``false`` = never prune.
    """

    startup_trials: int = 2
    warmup_validations: int = 1
    enabled: bool = True


@dataclass(frozen=True)
class SearchSpace:
    """What ``medseg tune`` samples per trial; an empty entry keeps the base config's value.

    Attributes:
        lr: ``[low, high]`` log-uniform learning rate at ``base_batch_size``.
        base_batch_size: batch size the ``lr`` range refers to (0 = the base config's batch size).
        batch_size: batch sizes to choose from (cases per batch).
        patch_size: cubic training patch side lengths to choose from (voxels).
        loss: loss names to choose from.
        width: feature-map multipliers to choose from (applied to every level of the base network).
        dropout: ``[low, high]`` uniform dropout probability.
        pruner: early stopping of unpromising trials.
        sampler_seed: seed of Optuna's TPE sampler (the same seed and results give the same proposals).
        random_trials: trials sampled at random before TPE models the results.
    """

    lr: tuple[float, ...] = ()
    base_batch_size: int = 0
    batch_size: tuple[int, ...] = ()
    patch_size: tuple[int, ...] = ()
    loss: tuple[str, ...] = ()
    width: tuple[float, ...] = ()
    dropout: tuple[float, ...] = ()
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    sampler_seed: int = 0
    random_trials: int = 4

    def searched(self) -> tuple[str, ...]:
        """Names of the hyperparameters this space varies (a subset of ``PARAMS``, in that order)."""
        return tuple(name for name in PARAMS if getattr(self, name))


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space YAML (see the module docstring).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type, or a value out of range, naming the key.
    """
    path = Path(path)
    try:
        space = load_config(SearchSpace, load_yaml(path))
        check_space(space)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return space


def _range(values: tuple[float, ...], key: str, low: float, high: float, high_inclusive: bool) -> None:
    if not values:
        return
    if len(values) != 2:
        raise ConfigError(f"{key}: give a range [low, high], got {list(values)}")
    first, second = values
    if not (math.isfinite(first) and math.isfinite(second)) or first > second:
        raise ConfigError(f"{key}: need low <= high, got {list(values)}")
    above = second > high if high_inclusive else second >= high
    if first < low or above:
        raise ConfigError(f"{key}: the range must lie in [{low:g}, {high:g}{']' if high_inclusive else ')'}, "
                          f"got {list(values)}")


def _distinct(values: tuple[Any, ...], key: str) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}: repeated choices in {list(values)}")


def check_space(space: SearchSpace) -> None:
    """Range and choice checks that do not need the base config.

    Raises:
        ConfigError: naming the key at fault.
    """
    _range(space.lr, "lr", 1e-12, 10.0, True)
    if space.lr and space.lr[0] <= 0:
        raise ConfigError(f"lr: the log-uniform range needs low > 0, got {list(space.lr)}")
    _range(space.dropout, "dropout", 0.0, 1.0, False)
    if space.base_batch_size < 0:
        raise ConfigError(f"base_batch_size: must be >= 0 (0 = the base config's), got {space.base_batch_size}")
    for key, values in (("batch_size", space.batch_size), ("patch_size", space.patch_size)):
        _distinct(values, key)
        if any(value < 1 for value in values):
            raise ConfigError(f"{key}: choices must be positive integers, got {list(values)}")
    _distinct(space.loss, "loss")
    unknown = [name for name in space.loss if name not in available_losses()]
    if unknown:
        raise ConfigError(f"loss: unknown loss {unknown[0]!r} (choices: {', '.join(available_losses())})")
    _distinct(space.width, "width")
    if any(not math.isfinite(w) or w <= 0 for w in space.width):
        raise ConfigError(f"width: multipliers must be positive, got {list(space.width)}")
    if space.random_trials < 1:
        raise ConfigError(f"random_trials: must be >= 1, got {space.random_trials}")
    if space.pruner.startup_trials < 0 or space.pruner.warmup_validations < 0:
        raise ConfigError("pruner: startup_trials and warmup_validations must be >= 0")
    if not space.searched():
        raise ConfigError(f"the search space varies nothing; give at least one of {', '.join(PARAMS)}")


def base_batch_size(space: SearchSpace, base: ExperimentConfig) -> int:
    """The batch size the sampled learning rate refers to."""
    return space.base_batch_size or base.train.batch_size


def scaled_lr(lr: float, batch_size: int, reference_batch: int) -> float:
    """Linear scaling rule: ``lr * batch_size / reference_batch``."""
    return lr * batch_size / reference_batch


def _scaled_channels(channels: tuple[int, ...], width: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(c * width))) for c in channels)


def apply_params(base: ExperimentConfig, params: dict[str, Any], space: SearchSpace) -> ExperimentConfig:
    """The base config with one trial's parameters (names from ``PARAMS``) applied.

    ``lr`` is the rate at the reference batch size; the config gets the linearly scaled rate.
    ``width`` multiplies every level's feature maps (UNet/DynUNet ``channels``; DeepMedic's
    pathway and 1x1x1 layers). Parameters absent from ``params`` keep the base values.
    """
    network, loss, train = base.network, base.loss, base.train
    batch = int(params.get("batch_size", train.batch_size))
    if "lr" in params or "batch_size" in params:
        reference = base_batch_size(space, base)
        lr = float(params["lr"]) if "lr" in params else train.optimizer.lr * reference / train.batch_size
        train = replace(train, batch_size=batch,
                        optimizer=replace(train.optimizer, lr=scaled_lr(lr, batch, reference)))
    if "patch_size" in params:
        side = int(params["patch_size"])
        network = replace(network, patch_size=(side, side, side))
    if "width" in params:
        width = float(params["width"])
        network = replace(
            network, channels=_scaled_channels(network.channels, width),
            deepmedic_channels=_scaled_channels(network.deepmedic_channels, width),
            deepmedic_low_channels=_scaled_channels(network.deepmedic_low_channels, width),
            deepmedic_fc_channels=_scaled_channels(network.deepmedic_fc_channels, width),
        )
    if "dropout" in params:
        network = replace(network, dropout=float(params["dropout"]))
    if "loss" in params:
        loss = replace(loss, name=str(params["loss"]))
    return replace(base, network=network, loss=loss, train=train)


def check_space_fits(space: SearchSpace, base: ExperimentConfig) -> None:
    """Check every patch size and width of the space against the base network before any trial runs.

    Raises:
        ConfigError: a choice the network cannot take, naming it.
    """
    from medseg.networks import build_network

    for side in space.patch_size:
        config = apply_params(base, {"patch_size": side}, space)
        try:
            network_geometry(config.network)
        except ConfigError as error:
            raise ConfigError(f"patch_size: {side} does not fit the {base.network.name} network ({error})") from None
    for width in space.width:
        config = apply_params(base, {"width": width}, space)
        try:
            build_network(config.network)
        except ConfigError as error:
            raise ConfigError(f"width: {width} does not fit the {base.network.name} network ({error})") from None


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """Plain data of the space (for search.json)."""
    from medseg.config import config_to_dict

    return config_to_dict(space)
