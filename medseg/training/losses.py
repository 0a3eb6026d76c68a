"""Segmentation losses by name, all from MONAI.

Every loss takes logits ``(B, K, X, Y, Z)`` and integer labels ``(B, 1, X, Y, Z)`` (softmax over the K
classes, labels one-hot encoded inside). ``LossConfig.class_weights`` (one per class, background first)
weight the classes where MONAI supports it:

- ``dice``: the per-class Dice terms (``DiceLoss(weight=...)``);
- ``dice_ce``: the cross-entropy and the Dice terms (``DiceCELoss(weight=...)``);
- ``dice_focal``: the focal and the Dice terms (``DiceFocalLoss(weight=...)``); note that MONAI 1.6's
  focal term scores each class channel with a sigmoid, while its Dice term uses the softmax;
- ``generalized_dice``: weights classes by inverse squared volume itself; class weights are refused.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, GeneralizedDiceLoss
from torch import nn

from medseg.config import LossConfig
from medseg.errors import ConfigError


def _dice_weights(config: LossConfig) -> list[float] | None:
    """Weights of the Dice-style terms, which skip the background when ``include_background`` is False."""
    if not config.class_weights:
        return None
    weights = list(config.class_weights)
    return weights if config.include_background else weights[1:]


def _dice(config: LossConfig) -> nn.Module:
    return DiceLoss(
        include_background=config.include_background, to_onehot_y=True, softmax=True, weight=_dice_weights(config)
    )


def _dice_ce(config: LossConfig) -> nn.Module:
    # MONAI drops the background weight from its Dice term itself; the CE term needs all K weights.
    weight = torch.tensor(config.class_weights, dtype=torch.float32) if config.class_weights else None
    return DiceCELoss(include_background=config.include_background, to_onehot_y=True, softmax=True, weight=weight)


def _dice_focal(config: LossConfig) -> nn.Module:
    return DiceFocalLoss(
        include_background=config.include_background, to_onehot_y=True, softmax=True, weight=_dice_weights(config)
    )


def _generalized_dice(config: LossConfig) -> nn.Module:
    if config.class_weights:
        raise ConfigError(
            "loss.class_weights: generalized_dice weights classes by their volume itself; "
            "remove class_weights or choose dice, dice_ce or dice_focal"
        )
    return GeneralizedDiceLoss(include_background=config.include_background, to_onehot_y=True, softmax=True)


_LOSSES: dict[str, Callable[[LossConfig], nn.Module]] = {
    "dice": _dice,
    "dice_ce": _dice_ce,
    "generalized_dice": _generalized_dice,
    "dice_focal": _dice_focal,
}


def available_losses() -> tuple[str, ...]:
    """Loss names ``build_loss`` knows (the CLI's choices)."""
    return tuple(_LOSSES)


def build_loss(config: LossConfig, out_channels: int) -> nn.Module:
    """The MONAI loss named ``config.name`` for a network with ``out_channels`` classes (incl. background).

    The module is called as ``loss(logits (B, K, ...), labels (B, 1, ...))`` and returns a scalar.

    Raises:
        ConfigError: unknown name (listing the choices), fewer than 2 classes, or class weights that are
            negative, of the wrong length, or not supported by the loss.
    """
    if config.name not in _LOSSES:
        raise ConfigError(f"loss.name: unknown loss {config.name!r} (choices: {', '.join(available_losses())})")
    if out_channels < 2:
        raise ConfigError(f"loss: softmax losses need at least 2 classes (background + one label), got {out_channels}")
    if config.class_weights:
        if len(config.class_weights) != out_channels:
            raise ConfigError(
                f"loss.class_weights: {len(config.class_weights)} weights for {out_channels} classes; "
                "give one weight per class, background first"
            )
        if any(w < 0 for w in config.class_weights):
            raise ConfigError(f"loss.class_weights: weights must be >= 0, got {list(config.class_weights)}")
    return _LOSSES[config.name](config)
