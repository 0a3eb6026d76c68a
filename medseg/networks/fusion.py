"""Less work per voxel, exactly: batch norm with running averages folded into the convolution before it.

At inference a batch norm with running averages is a per-channel affine map, so a convolution followed
by it is one convolution with scaled weights and a shifted bias (``torch.nn.utils.fusion``). MONAI's
UNet orders its blocks convolution -> [norm, dropout, activation] (``ADN`` "NDA"), so every batch norm
there directly follows a convolution or transposed convolution and folds away. Batch norm using each
window's own statistics (``network.norm_statistics: window``) depends on the input and cannot be
folded. DeepMedic's pre-activation pathways put batch norm before the activation and convolution of the next layer:
it folds into the convolution before it where that layer's output is neither a residual sum nor a residual
source (``Pathway.fold_norms``: 4 of 7 per pathway); in its 1x1x1 head a convolution feeds the next layer's
batch norm directly, and those fold.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from medseg.networks.deepmedic import Pathway

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _foldable(norm: nn.Module) -> bool:
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and norm.track_running_stats
        and norm.running_mean is not None
        and norm.running_var is not None
    )


def _first_child(module: nn.Module) -> tuple[nn.Module, str, nn.Module] | None:
    """(parent, name, child) of the first module ``module`` runs when it is a plain Sequential, else None."""
    if isinstance(module, nn.Sequential) and len(module) > 0:
        name, child = next(iter(module.named_children()))
        return module, name, child
    return None


def fold_batch_norm(network: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``network`` with every convolution -> batch norm (running averages) pair fused.

    A pair is a convolution (or a Sequential whose last module is one) followed, inside an ``nn.Sequential``,
    by a batch norm or by a Sequential whose first module is one (MONAI's ``Convolution(conv, ADN(N, D, A))``;
    DeepMedic's head, ``[.., conv]`` then ``[norm, ..]``).

    Returns:
        The new network (the input is not changed) and the number of batch norms folded.
    """
    folded = copy.deepcopy(network).eval()
    count = 0
    with torch.no_grad():
        for module in list(folded.modules()):
            if not isinstance(module, nn.Sequential):
                continue
            names = [name for name, _ in module.named_children()]
            for first, second in zip(names, names[1:]):
                owner, key, convolution = module, first, getattr(module, first)
                while isinstance(convolution, nn.Sequential) and len(convolution) > 0:
                    owner, (key, convolution) = convolution, list(convolution.named_children())[-1]
                if not isinstance(convolution, _CONVOLUTIONS):
                    continue
                target: tuple[nn.Module, str, nn.Module] | None = (module, second, getattr(module, second))
                while target is not None and not _foldable(target[2]):
                    target = _first_child(target[2])
                if target is None:
                    continue
                parent, name, norm = target
                transpose = isinstance(convolution, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
                setattr(owner, key, fuse_conv_bn_eval(convolution, norm, transpose=transpose))
                setattr(parent, name, nn.Identity())
                count += 1
        for module in list(folded.modules()):
            if isinstance(module, Pathway):
                count += module.fold_norms()
    return folded, count
