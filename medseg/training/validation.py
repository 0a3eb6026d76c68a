"""Validation: whole volumes by the window runner inference uses (``medseg.windows``), mean Dice per
class, and the majority-class baseline (background everywhere) on the same cases."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.metrics import compute_dice
from monai.networks.utils import one_hot
from torch import nn

from medseg.config import NetworkConfig
from medseg.networks import NetworkGeometry
from medseg.windows import predict_logits


def validate(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    geometry: NetworkGeometry,
    loss_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    class_names: Sequence[str],
    device: torch.device,
    overlap: float = 0.25,
    sw_batch_size: int = 2,
    autocast: bool = False,
    network: NetworkConfig | None = None,
) -> dict[str, float]:
    """Validation loss, Dice per foreground class and the background-only baseline's Dice.

    Args:
        model: the network (eval mode is set here and not restored).
        batches: dicts with ``image`` (1, C, I, J, K) and ``label`` (1, 1, I, J, K).
        class_names: names of classes 0..K-1 (background first).
        network: the network's config: the window plan is the one the Predictor chooses for it
            (``medseg.windows.choose_plan("auto", ...)``); None: MONAI's sliding windows (plan ``"monai"``).

    Returns:
        ``val_loss``, ``val_dice_<class>`` and ``baseline_dice_<class>`` per foreground class,
        and their means ``val_dice_mean`` / ``baseline_dice_mean``. A class absent from every
        validation label gives NaN (MONAI's ``ignore_empty``).
    """
    classes = len(class_names)
    # Per-case Dice with MONAI's functional compute_dice: DiceMetric's buffers all-gather across
    # torchrun processes, but only rank 0 validates.
    model_scores: list[torch.Tensor] = []
    baseline_scores: list[torch.Tensor] = []
    losses: list[float] = []
    model.eval()
    with torch.no_grad():
        for batch in batches:
            image = batch["image"].to(device)
            label = batch["label"].to(device)
            with torch.autocast(device_type=device.type, enabled=autocast):
                logits = predict_logits(model, image, network or NetworkConfig(), geometry, overlap=overlap,
                                        plan="auto" if network is not None else "monai", batch_size=sw_batch_size)
            logits = logits.float()
            losses.append(float(loss_function(logits, label)))
            truth = one_hot(label.long(), num_classes=classes)
            prediction = one_hot(logits.argmax(dim=1, keepdim=True), num_classes=classes)
            background = one_hot(torch.zeros_like(label, dtype=torch.long), num_classes=classes)
            model_scores.append(compute_dice(prediction, truth, include_background=False, ignore_empty=True).cpu())
            baseline_scores.append(compute_dice(background, truth, include_background=False, ignore_empty=True).cpu())
    result = {"val_loss": sum(losses) / len(losses) if losses else math.nan}
    for prefix, scores in (("val_dice", model_scores), ("baseline_dice", baseline_scores)):
        values = _nan_mean(scores, classes - 1)
        for name, value in zip(class_names[1:], values):
            result[f"{prefix}_{name}"] = value
        finite = [v for v in values if math.isfinite(v)]
        result[f"{prefix}_mean"] = sum(finite) / len(finite) if finite else math.nan
    return result


def _nan_mean(scores: list[torch.Tensor], count: int) -> list[float]:
    """Mean over cases per class, skipping NaN (class absent from a case's label)."""
    if not scores:
        return [math.nan] * count
    stacked = torch.cat(scores).double()  # (cases, classes)
    return [float(v) for v in torch.nanmean(stacked, dim=0)]
