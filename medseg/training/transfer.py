"""Transfer learning: copy matching weights from a checkpoint or a model folder, optionally freeze parts.

``init_from_checkpoint`` copies tensors by name and shape; ``freeze_encoder`` stops the encoder's
gradients; ``freeze_norm_statistics`` keeps batch norm on its running statistics while training, so
that a model shipped with ``network.norm_statistics: running`` is trained on what it will see.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medseg.errors import ConfigError, InputError
from medseg.networks.weights import load_state_dict_safely
from medseg.training.checkpoint import load_checkpoint

MODEL_FOLDER_WEIGHTS = "weights.pt"
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

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


def source_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict of a run's checkpoint (``.pt``) or of a model folder (its ``weights.pt``).

    Raises:
        InputError: missing, unreadable, holding pickled objects (refused), or not a state_dict.
    """
    path = Path(path)
    if not path.is_dir():
        return load_checkpoint(path)["model"]
    weights = path / MODEL_FOLDER_WEIGHTS
    hint = "give a run's checkpoint (.pt) or a model folder written by `medseg model-folder`"
    if not weights.is_file():
        raise InputError(path, f"a folder without {MODEL_FOLDER_WEIGHTS}", hint)
    return load_state_dict_safely(weights, "weights file", hint)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> TransferReport:
    """Copy every tensor of the source's model whose name and shape match ``model``'s.

    ``path``: a run's checkpoint or a model folder (``source_weights``).

    Raises:
        InputError: the source cannot be read.
        ConfigError: no tensor matches (another network altogether).
    """
    source = source_weights(path)
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


def freeze_norm_statistics(model: nn.Module) -> int:
    """Put every batch norm of ``model`` in eval mode (call after ``model.train()``); returns how many.

    In eval mode batch norm normalises with its running mean and variance and leaves them as they
    are; its scale and shift still learn. Training then matches inference with
    ``network.norm_statistics: running`` instead of each batch's own statistics.
    """
    norms = [module for module in model.modules() if isinstance(module, BATCH_NORMS)]
    for module in norms:
        module.eval()
    return len(norms)
