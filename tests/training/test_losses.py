"""Loss factory: names, errors, and values on perfect, inverted and uniform predictions."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from medseg.config import LossConfig
from medseg.errors import ConfigError
from medseg.training.losses import available_losses, build_loss


@pytest.fixture
def labels() -> torch.Tensor:
    """(2, 1, 8, 8, 8) labels: background, a cube of class 1 and a slab of class 2."""
    labels = torch.zeros(2, 1, 8, 8, 8, dtype=torch.long)
    labels[:, :, 2:6, 2:6, 2:6] = 1
    labels[:, :, 6:, :2] = 2
    return labels


def _logits(labels: torch.Tensor, sign: float) -> torch.Tensor:
    """Confident logits (B, 3, ...): +20 on the true class (sign 1) or on every other class (sign -1)."""
    one_hot = functional.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float()
    return sign * (2 * one_hot - 1) * 20


def test_available_losses() -> None:
    assert available_losses() == ("dice", "dice_ce", "generalized_dice", "dice_focal")


def test_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown loss 'tversky' \(choices: dice, dice_ce, generalized_dice, dice_focal\)"
    ):
        build_loss(LossConfig(name="tversky"), 3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LossConfig(class_weights=(1.0, 2.0)), "2 weights for 3 classes"),
        (LossConfig(class_weights=(1.0, -2.0, 1.0)), "must be >= 0"),
        (LossConfig(name="generalized_dice", class_weights=(1.0, 2.0, 1.0)), "weights classes by their volume"),
    ],
)
def test_bad_class_weights_raise(config: LossConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_loss(config, 3)


def test_one_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_loss(LossConfig(), 1)


@pytest.mark.parametrize("name", ["dice", "dice_ce", "generalized_dice", "dice_focal"])
@pytest.mark.parametrize("include_background", [False, True])
def test_perfect_prediction_gives_zero(labels: torch.Tensor, name: str, include_background: bool) -> None:
    loss = build_loss(LossConfig(name=name, include_background=include_background), 3)
    assert float(loss(_logits(labels, 1.0), labels)) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("name", ["dice", "generalized_dice"])
def test_inverted_prediction_gives_one_for_dice(labels: torch.Tensor, name: str) -> None:
    loss = build_loss(LossConfig(name=name), 3)
    assert float(loss(_logits(labels, -1.0), labels)) == pytest.approx(1.0, abs=1e-3)


def test_dice_ce_adds_the_cross_entropy(labels: torch.Tensor) -> None:
    # Inverted logits: Dice term 1, CE = 20 - (-20) + log(1 + e^-40) = 40 per voxel, plus log 2 for the tie.
    value = float(build_loss(LossConfig(name="dice_ce"), 3)(_logits(labels, -1.0), labels))
    assert value == pytest.approx(1.0 + 40.0 + torch.log(torch.tensor(2.0)).item(), abs=1e-3)


def test_uniform_prediction_dice_value(labels: torch.Tensor) -> None:
    # Softmax 1/3 in all N = 512 voxels; class c with n_c voxels: Dice = 2 (n_c / 3) / (N / 3 + n_c).
    value = float(build_loss(LossConfig(name="dice", include_background=True), 3)(torch.zeros(2, 3, 8, 8, 8), labels))
    dice = [2 * n / (512 + 3 * n) for n in (416, 64, 32)]
    assert value == pytest.approx(1 - sum(dice) / 3, abs=1e-5)


@pytest.mark.parametrize("name", ["dice", "dice_ce", "dice_focal"])
@pytest.mark.parametrize("include_background", [False, True])
def test_class_weights_change_the_value(labels: torch.Tensor, name: str, include_background: bool) -> None:
    logits = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = float(build_loss(LossConfig(name=name, include_background=include_background), 3)(logits, labels))
    ones = LossConfig(name=name, include_background=include_background, class_weights=(1.0, 1.0, 1.0))
    weighted = LossConfig(name=name, include_background=include_background, class_weights=(0.5, 1.0, 4.0))
    assert float(build_loss(ones, 3)(logits, labels)) == pytest.approx(plain, rel=1e-5)
    assert float(build_loss(weighted, 3)(logits, labels)) > plain + 0.1


def test_weighted_dice_is_the_weighted_mean_of_class_terms(labels: torch.Tensor) -> None:
    logits = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    per_class = build_loss(LossConfig(name="dice"), 3)
    terms = [
        float(build_loss(LossConfig(name="dice", class_weights=w), 3)(logits, labels))
        for w in ((1.0, 1.0, 0.0), (1.0, 0.0, 1.0))
    ]
    # Without background the mean runs over 2 classes: each one-hot weight keeps half of one class term.
    assert sum(terms) == pytest.approx(float(per_class(logits, labels)), rel=1e-5)
