"""Batch norm folded into convolutions: exact for running averages, untouched otherwise."""

from __future__ import annotations

import torch

from medseg.config import NetworkConfig
from medseg.networks import build_network
from medseg.networks.fusion import fold_batch_norm
from medseg.networks.norm_statistics import with_norm_statistics


def _unet(statistics: str) -> torch.nn.Module:
    config = NetworkConfig(name="unet", out_channels=4, channels=(4, 8, 16), strides=(2, 2), num_res_units=1,
                           norm="batch", norm_statistics=statistics)
    torch.manual_seed(0)
    network = build_network(config)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1.0, 1.0)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1.0, 1.0)
    return with_norm_statistics(network.eval(), statistics)


def _norms(network: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm3d) for m in network.modules())


def test_folding_running_batch_norm_is_exact_and_removes_every_norm() -> None:
    network = _unet("running")
    folded, count = fold_batch_norm(network)
    assert count == _norms(network) == 6 and _norms(folded) == 0
    x = torch.randn((1, 1, 24, 24, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), network(x), atol=1e-4, rtol=1e-4)
    assert _norms(network) == 6  # the original is left as it was


def test_window_statistics_are_left_alone_and_deepmedic_folds_only_its_head() -> None:
    folded, count = fold_batch_norm(_unet("window"))
    assert count == 0 and _norms(folded) == 6
    torch.manual_seed(0)
    deepmedic = build_network(NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4, 4),
                                            deepmedic_fc_channels=(8, 8), deepmedic_residual_layers=())).eval()
    for module in deepmedic.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1.0, 1.0)
    folded, count = fold_batch_norm(deepmedic)
    # Pre-activation pathways (norm -> activation -> convolution) keep theirs; in the 1x1x1 head a convolution
    # feeds the next layer's norm directly: 2 of its 3 norms fold.
    assert count == 2 and _norms(folded) == _norms(deepmedic) - 2
    x = torch.randn((1, 1, 27, 27, 27), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), deepmedic(x), atol=1e-4, rtol=1e-4)
