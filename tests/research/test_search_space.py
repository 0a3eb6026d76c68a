"""Search-space files: typed keys, ranges and choices checked, linear lr scaling, fit to the base network."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medseg.config import ExperimentConfig, NetworkConfig, TrainConfig, load_experiment
from medseg.errors import ConfigError
from medseg.research.search_space import (
    SearchSpace,
    apply_params,
    check_space_fits,
    load_search_space,
    scaled_lr,
)

PRESETS = Path(__file__).resolve().parents[2] / "models" / "presets"


def _write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_the_bundled_search_preset_loads_and_fits_the_unet_preset() -> None:
    space = load_search_space(PRESETS / "brain-tissue-search.yaml")
    assert space.searched() == ("lr", "batch_size", "patch_size", "loss", "width", "dropout")
    check_space_fits(space, load_experiment(PRESETS / "brain-tissue-unet.yaml"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"learning_rate": [1e-4, 1e-2]}, "unknown key 'learning_rate'"),
        ({"pruner": {"patience": 3}}, "unknown key 'pruner.patience'"),
        ({"lr": [1e-2, 1e-4]}, "lr: need low <= high"),
        ({"lr": [0.0, 1e-2]}, "lr: the range must lie"),
        ({"lr": [1e-4]}, "lr: give a range [low, high]"),
        ({"dropout": [0.0, 1.0]}, "dropout: the range must lie in [0, 1)"),
        ({"batch_size": [2, 2]}, "batch_size: repeated choices"),
        ({"batch_size": [0, 2]}, "batch_size: choices must be positive"),
        ({"batch_size": ["two"]}, "batch_size[0]: expected an integer"),
        ({"loss": ["dice", "hinge"]}, "loss: unknown loss 'hinge'"),
        ({"width": [0.0, 1.0]}, "width: multipliers must be positive"),
        ({}, "the search space varies nothing"),
    ],
)
def test_bad_spaces_raise_config_errors_naming_the_key(tmp_path: Path, content: dict, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_search_space(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_patch_sizes_the_network_cannot_take_are_refused_before_any_trial() -> None:
    base = ExperimentConfig(network=NetworkConfig(channels=(4, 8, 16), strides=(2, 2)))
    with pytest.raises(ConfigError, match="patch_size: 10 does not fit the unet network"):
        check_space_fits(SearchSpace(patch_size=(16, 10)), base)
    check_space_fits(SearchSpace(patch_size=(16, 32)), base)


def test_apply_params_scales_lr_linearly_with_batch_size_and_width_per_level() -> None:
    base = ExperimentConfig(network=NetworkConfig(channels=(16, 32, 64)), train=TrainConfig(batch_size=2))
    space = SearchSpace(lr=(1e-4, 1e-2), base_batch_size=2, batch_size=(1, 2, 4))
    config = apply_params(base, {"lr": 1e-3, "batch_size": 4, "width": 0.5, "patch_size": 48,
                                 "dropout": 0.25, "loss": "dice_focal"}, space)
    assert config.train.batch_size == 4 and config.train.optimizer.lr == pytest.approx(2e-3)
    assert config.network.channels == (8, 16, 32) and config.network.patch_size == (48, 48, 48)
    assert config.network.dropout == 0.25 and config.loss.name == "dice_focal"
    # Only the batch size searched: the base lr (at the base batch size 2) is scaled.
    only_batch = apply_params(base, {"batch_size": 1}, SearchSpace(batch_size=(1, 2)))
    assert only_batch.train.optimizer.lr == pytest.approx(base.train.optimizer.lr / 2)
    assert scaled_lr(1e-3, 8, 2) == pytest.approx(4e-3)
    assert apply_params(base, {}, space) == base
