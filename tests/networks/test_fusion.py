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
    network = _scrambled_norms(build_network(config))
    return with_norm_statistics(network.eval(), statistics)


def _scrambled_norms(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` with every batch norm's averages and affine parameters away from identity (a wrong fold shows)."""
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1.0, 1.0)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1.0, 1.0)
    return network


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


def test_window_statistics_are_left_alone_and_deepmedic_folds_where_exact() -> None:
    folded, count = fold_batch_norm(_unet("window"))
    assert count == 0 and _norms(folded) == 6
    torch.manual_seed(0)
    deepmedic = build_network(NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4, 4),
                                            deepmedic_fc_channels=(8, 8), deepmedic_residual_layers=())).eval()
    for module in deepmedic.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1.0, 1.0)
    folded, count = fold_batch_norm(deepmedic)
    # Each 2-layer pathway's second-layer norm follows its first convolution directly (no residuals): 1 each;
    # in the 1x1x1 head a convolution feeds the next layer's norm directly: 2 of its 3 norms fold.
    assert count == 4 and _norms(folded) == _norms(deepmedic) - 4
    x = torch.randn((1, 1, 27, 27, 27), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), deepmedic(x), atol=1e-4, rtol=1e-4)


def test_deepmedic_pathways_fold_only_norms_after_plain_layers() -> None:
    torch.manual_seed(0)
    config = NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4, 5, 6, 6, 6, 6, 7, 7),
                           deepmedic_fc_channels=(8, 8))
    deepmedic = _scrambled_norms(build_network(config)).eval()
    folded, count = fold_batch_norm(deepmedic)
    # Residual layers 4, 6, 8: the outputs of layers 2, 4, 6 are added later un-normalised, and 4, 6 are sums,
    # so the norms after layers 1, 3, 5, 7 fold (4 per pathway) plus 2 in the head.
    assert count == 2 * 4 + 2
    kept = [index for index, layer in enumerate(folded.normal.layers) if isinstance(layer[0], torch.nn.BatchNorm3d)]
    assert kept == [2, 4, 6]  # 0-based: the layers after layers 2, 4 and 6
    x = torch.randn((1, 1, 60, 63, 66), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), deepmedic(x), atol=1e-4, rtol=1e-4)
