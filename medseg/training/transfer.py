"""Transfer learning: copy matching weights from a checkpoint, optionally freeze the encoder."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from medseg.errors import ConfigError
from medseg.training.checkpoint import load_checkpoint

LOGGER = logging.getLogger(__name__)

# Parameter names of each network's encoder (down path and bottom; DeepMedic: both pathways).
# MONAI's UNet nests its levels as model.[0 down, 1 SkipConnection(submodule), 2 up], recursively.
ENCODER_PATTERNS = {
    "unet": r"^model\.(1\.submodule\.)*(0\.|1\.submodule\.[a-z])",
    "dynunet": r"^(input_block|downsamples|bottleneck)\.",
    "deepmedic": r"^(normal|low)\.",
}


@dataclass(frozen=True)
class TransferReport:
    """What ``init_from_checkpoint`` did.

    Attributes:
        loaded: parameter/buffer names copied from the checkpoint.
        skipped: names kept at their initial values (missing or of another shape there).
        frozen: parameter names that no longer require gradients.
    """

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    frozen: tuple[str, ...] = ()


def init_from_checkpoint(model: nn.Module, path: str | Path) -> TransferReport:
    """Copy every tensor of the checkpoint's model whose name and shape match ``model``'s.

    Raises:
        InputError: the checkpoint cannot be read.
        ConfigError: no tensor matches (another network altogether).
    """
    source = load_checkpoint(path)["model"]
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    if not matched:
        raise ConfigError(
            f"train.finetune.init_from: {path} shares no weights (same name and shape) with this network; "
            "check network.name and its sizes"
        )
    model.load_state_dict(matched, strict=False)
    skipped = tuple(sorted(set(target) - set(matched)))
    LOGGER.info("init-from %s: %d tensors loaded, %d kept at initial values", path, len(matched), len(skipped))
    return TransferReport(loaded=tuple(sorted(matched)), skipped=skipped)


def freeze_encoder(model: nn.Module, network_name: str) -> tuple[str, ...]:
    """Stop gradients for the encoder's parameters; returns their names.

    Raises:
        ConfigError: no encoder pattern is known for ``network_name``.
    """
    pattern = ENCODER_PATTERNS.get(network_name)
    if pattern is None:
        raise ConfigError(
            f"train.finetune.freeze_encoder: no encoder known for network '{network_name}' "
            f"(known: {', '.join(ENCODER_PATTERNS)})"
        )
    regex = re.compile(pattern)
    frozen = []
    for name, parameter in model.named_parameters():
        if regex.match(name):
            parameter.requires_grad_(False)
            frozen.append(name)
    return tuple(frozen)
