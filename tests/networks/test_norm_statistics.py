"""Batch norm with each window's own statistics outside training (generator-trained models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.config import NetworkConfig
from medseg.networks import build_network
from medseg.networks.norm_statistics import with_norm_statistics


def _trained_network() -> nn.Module:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(name="unet", in_channels=1, out_channels=3, channels=(4, 8),
                                           strides=(2,), num_res_units=1, norm="batch"))
    network.train()
    with torch.no_grad():
        for _ in range(3):  # running averages of inputs unlike the test input
            network(torch.randn(2, 1, 16, 16, 16) * 5 + 3)
    return network.eval()


def test_window_statistics_normalise_each_input_by_itself_in_eval_mode() -> None:
    network = _trained_network()
    window = with_norm_statistics(network, "window", copy_model=True).eval()
    image = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        running_out = network(image)
        window_out = window(image)
        # Reference: the same weights in training mode use the batch's statistics.
        reference = with_norm_statistics(network, "running", copy_model=True)
        batch_norms = [m for m in reference.modules() if isinstance(m, nn.BatchNorm3d)]
        for module in batch_norms:
            module.train()
            module.momentum = 0.0
        expected = reference(image)
    assert torch.allclose(window_out, expected, atol=1e-5)
    assert not torch.allclose(window_out, running_out, atol=1e-2)  # the running averages describe other data
    # The trained module keeps its buffers (the copy was changed, not the original).
    assert all(m.running_mean is not None for m in network.modules() if isinstance(m, nn.BatchNorm3d))


def test_running_is_the_unchanged_model_and_unknown_names_are_refused() -> None:
    network = _trained_network()
    assert with_norm_statistics(network, "running") is network
    with pytest.raises(ValueError, match="norm_statistics"):
        with_norm_statistics(network, "batch")
