"""Channels-last PReLU and batch norm: the same values as PyTorch's kernels, through the fast 2-D view."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from medseg.networks import channelwise

# Voxel counts: a multiple of 64, one whose largest divisor up to 64 is odd, and a prime (rows of 1 voxel).
SHAPES = [(1, 20, 8, 8, 8), (2, 7, 5, 6, 7), (1, 5, 1, 1, 61)]


def _channels_last(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_prelu_and_batch_norm_match_pytorch_bit_for_bit(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = _channels_last(shape, dtype)
    channels = shape[1]
    assert channelwise._rows(x) is not None  # the fast path is the one under test
    weight = (torch.rand(channels) * 0.5).to(dtype)
    mean, var = torch.randn(channels), torch.rand(channels) + 0.5
    gamma, beta = torch.randn(channels), torch.randn(channels)

    fast = channelwise.prelu(x, weight)
    assert torch.equal(fast, functional.prelu(x, weight))
    assert fast.is_contiguous(memory_format=torch.channels_last_3d)
    normalised = channelwise.batch_norm(x, mean, var, gamma, beta, 1e-5)
    assert torch.equal(normalised, functional.batch_norm(x, mean, var, gamma, beta, False, 0.0, 1e-5))


def test_other_layouts_take_pytorch_kernels() -> None:
    x = torch.randn(1, 4, 3, 4, 5)
    assert channelwise._rows(x) is None
    assert channelwise._rows(x.contiguous(memory_format=torch.channels_last_3d)[..., 1:]) is None


def test_modules_keep_pytorch_state_dicts_and_training_behaviour() -> None:
    torch.manual_seed(0)
    stock, fast = torch.nn.BatchNorm3d(6), channelwise.BatchNorm3d(6)
    fast.load_state_dict(stock.state_dict())
    x = _channels_last((2, 6, 4, 5, 6), torch.float32)
    assert torch.equal(fast(x), stock(x))  # training: batch statistics, running averages updated alike
    assert torch.equal(fast.running_mean, stock.running_mean)
    fast.eval(), stock.eval()
    assert torch.equal(fast(x), stock(x))
    prelu = channelwise.PReLU(6)
    assert set(prelu.state_dict()) == set(torch.nn.PReLU(6).state_dict())
