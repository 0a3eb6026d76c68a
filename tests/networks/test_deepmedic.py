"""DeepMedic: size relation, residual connections, receptive field, and a bounded overfit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import build_network
from medseg.networks.deepmedic import DeepMedic, _add_residual

TINY = NetworkConfig(name="deepmedic", deepmedic_channels=(3,) * 8, deepmedic_fc_channels=(4, 4))


@pytest.fixture
def tiny() -> DeepMedic:
    torch.manual_seed(0)
    return build_network(TINY).eval()


@pytest.mark.parametrize(("segment", "output"), [(25, 9), (45, 29), (17, 1), (26, 10), (27, 11)])
def test_output_is_the_normal_segment_minus_16(tiny: DeepMedic, segment: int, output: int) -> None:
    # The input tensor carries the normal segment plus 16 voxels of low-resolution context per side.
    size = segment + 32
    with torch.no_grad():
        out = tiny(torch.zeros(1, 1, size, size, size))
    assert out.shape == (1, 2, output, output, output)
    assert tiny.output_size((size, size + 1, size + 2)) == (output, output + 1, output + 2)


def test_default_network_trains_on_57_cubes_with_9_cube_outputs() -> None:
    network = build_network(NetworkConfig(name="deepmedic", out_channels=3))
    assert network.margin == 24
    with torch.no_grad():
        assert network.eval()(torch.zeros(1, 1, 57, 57, 57)).shape == (1, 3, 9, 9, 9)
    convs = [m.out_channels for m in network.normal.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs == [30, 30, 40, 40, 40, 40, 50, 50]
    head = [m.out_channels for m in network.head.modules() if isinstance(m, torch.nn.Conv3d)]
    assert head == [150, 150, 3]


def test_too_small_input_raises_a_clear_error(tiny: DeepMedic) -> None:
    with pytest.raises(ConfigError, match="at least 49 voxels"):
        tiny(torch.zeros(1, 1, 48, 57, 57))


def test_residual_is_cropped_and_zero_padded_in_channels() -> None:
    out = torch.ones(1, 3, 2, 2, 2)
    earlier = torch.arange(2 * 64, dtype=torch.float32).reshape(1, 2, 4, 4, 4)
    summed = _add_residual(out, earlier)
    assert torch.equal(summed[:, :2], 1 + earlier[:, :, 1:3, 1:3, 1:3])
    assert torch.equal(summed[:, 2], out[:, 2])
    # More earlier channels than output channels: the extra ones are dropped.
    assert torch.equal(_add_residual(torch.zeros(1, 1, 2, 2, 2), earlier), earlier[:, :1, 1:3, 1:3, 1:3])


def _support(gradient: torch.Tensor, axis: int) -> tuple[int, int]:
    """First and last input index along ``axis`` (0..2) where ``gradient`` (X, Y, Z) is non-zero."""
    others = tuple(a for a in range(3) if a != axis)
    hits = gradient.abs().sum(others).nonzero().flatten()
    return int(hits.min()), int(hits.max())


@pytest.mark.parametrize("v", [0, 1, 2, 3, 8])
def test_receptive_field_is_51_voxels_on_the_pooling_grid(tiny: DeepMedic, v: int) -> None:
    network = tiny.double()
    x = torch.randn(1, 1, 57, 57, 57, dtype=torch.float64, requires_grad=True)
    network(x)[0, 1, v, 4, 4].backward()
    # Output v sits on input v + 24; the low-resolution field covers 17 pooling blocks of 3 voxels.
    assert _support(x.grad[0, 0], 0) == (3 * (v // 3), 3 * (v // 3) + 50)
    assert _support(x.grad[0, 0], 1) == (3, 53)


def test_normal_pathway_receptive_field_is_17_voxels(tiny: DeepMedic) -> None:
    x = torch.randn(1, 1, 25, 25, 25, requires_grad=True)
    tiny.normal(x)[0, 0, 4, 4, 4].backward()
    assert [_support(x.grad[0, 0], axis) for axis in range(3)] == [(4, 20)] * 3


def test_overfits_one_sphere(
    make_sphere: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    overfit_run: Callable[..., tuple[float, int]],
) -> None:
    # A 60^3 input (normal segment 28^3) gives 12^3 outputs around a sphere of radius 4.
    image, labels = make_sphere(size=60, radius=4)
    network = build_network(NetworkConfig(name="deepmedic", deepmedic_channels=(4,) * 8, deepmedic_fc_channels=(8, 8)))
    dice, steps = overfit_run(network, image, labels[..., 24:-24, 24:-24, 24:-24], max_steps=80)
    assert dice > 0.9, f"Dice {dice:.3f} after {steps} steps"


def test_dropout_sits_on_the_inputs_of_the_last_two_layers() -> None:
    network = build_network(NetworkConfig(name="deepmedic", dropout=0.5, deepmedic_channels=(2,) * 8))
    dropouts = [m.p for m in network.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.5]
    assert not isinstance(network.head[0][-2], torch.nn.Dropout)
    assert isinstance(network.head[1][-2], torch.nn.Dropout) and isinstance(network.head[2][-2], torch.nn.Dropout)


def _scrambled_statistics(network: DeepMedic) -> DeepMedic:
    """Batch norms and PReLUs away from their identity-like initial values, so a wrong split shows."""
    generator = torch.Generator().manual_seed(1)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1, generator=generator)
            module.running_var.uniform_(0.5, 2, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.5, 0.5, generator=generator)
        if isinstance(module, torch.nn.PReLU):
            module.weight.data.uniform_(0, 0.5, generator=generator)
    return network.eval()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_split_head_equals_the_concatenation(
    monkeypatch: pytest.MonkeyPatch, memory_format: torch.memory_format
) -> None:
    torch.manual_seed(0)
    config = NetworkConfig(name="deepmedic", out_channels=4, deepmedic_channels=(4, 5, 6, 6, 6, 6, 7, 7),
                           deepmedic_low_channels=(3, 3, 4, 4, 4, 4, 5, 5), deepmedic_fc_channels=(8, 8))
    network = _scrambled_statistics(build_network(config)).to(memory_format=memory_format)
    x = torch.randn(1, 1, 48 + 9, 48 + 12, 48 + 15).contiguous(memory_format=memory_format)
    assert network._head_splits((9, 12, 15))
    with torch.no_grad():
        split = network(x)
        monkeypatch.setattr(DeepMedic, "_head_splits", lambda self, out_size: False)
        concatenated = network(x)
    assert split.shape == (1, 4, 9, 12, 15)
    torch.testing.assert_close(split, concatenated, rtol=1e-5, atol=1e-5)


def test_head_splits_only_in_evaluation_with_running_averages_and_aligned_outputs(tiny: DeepMedic) -> None:
    assert tiny._head_splits((9, 9, 9))
    assert not tiny._head_splits((9, 10, 9))  # the repetition would not tile the output
    assert not tiny.train()._head_splits((9, 9, 9))  # training: batch statistics of the concatenation


def test_low_pathway_widths_are_their_own() -> None:
    network = build_network(NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4,) * 8,
                                          deepmedic_low_channels=(6,) * 7 + (9,), deepmedic_fc_channels=(8, 8)))
    low = [m.out_channels for m in network.low.modules() if isinstance(m, torch.nn.Conv3d)]
    assert low == [6] * 7 + [9]
    assert network.head[0][-1].in_channels == 4 + 9
    with pytest.raises(ConfigError, match="deepmedic_low_channels"):
        build_network(NetworkConfig(name="deepmedic", deepmedic_low_channels=(6,) * 7))
