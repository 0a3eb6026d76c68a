"""Same-size outputs of valid networks: whole-volume padding and exact sliding-window stitching."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import (
    SameSizeOutput,
    build_network,
    network_geometry,
    pad_for_valid,
    valid_sliding_window_inference,
)

CONFIG = NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4,) * 8, deepmedic_fc_channels=(8, 8))


@pytest.fixture(scope="module")
def deepmedic() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(CONFIG).eval()


class CountingNetwork(torch.nn.Module):
    """Counts the windows it is called on."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return self.network(x)


def test_pad_for_valid_shapes_and_values() -> None:
    x = torch.arange(5, dtype=torch.float32).reshape(1, 1, 5, 1, 1).expand(1, 1, 5, 3, 3)
    padded = pad_for_valid(x, margin=2, align=3)
    assert padded.shape == (1, 1, 10, 7, 7)
    assert padded[0, 0, :, 0, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 4, 4, 4]
    reflected = pad_for_valid(x, margin=2, align=1, pad_mode="reflect")
    assert reflected[0, 0, :, 2, 2].tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    with pytest.raises(ConfigError, match="not one of replicate, reflect"):
        pad_for_valid(x, margin=2, pad_mode="wrap")


def test_stitched_windows_equal_one_whole_volume_forward(deepmedic: torch.nn.Module) -> None:
    geometry = network_geometry(CONFIG)
    x = torch.randn(1, 1, 30, 27, 21, generator=torch.Generator().manual_seed(1))
    counting = CountingNetwork(deepmedic)
    with torch.no_grad():
        direct = deepmedic(functional.pad(x, (geometry.margin,) * 6, mode="replicate"))
        stitched = valid_sliding_window_inference(
            x, counting, (15, 15, 15), geometry.margin, align=geometry.align, overlap=0.5, sw_batch_size=8
        )
    # Steps of int(15 * 0.5) = 7 rounded down to 6: starts 0, 6, 12, 15 (30); 0, 6, 12 (27); 0, 6 (21).
    assert counting.windows == 4 * 3 * 2
    assert stitched.shape == direct.shape == (1, 3, 30, 27, 21)
    assert torch.allclose(stitched, direct, atol=1e-5)


@pytest.mark.parametrize("pad_mode", ["replicate", "reflect"])
def test_uneven_volume_matches_same_size_output(deepmedic: torch.nn.Module, pad_mode: str) -> None:
    # Sides that are not multiples of 3, and one shorter than the window (the window shrinks to 27).
    x = torch.randn(2, 1, 35, 29, 26, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = SameSizeOutput(deepmedic, margin=24, align=3, pad_mode=pad_mode)(x)
        stitched = valid_sliding_window_inference(
            x, deepmedic, (30, 18, 30), 24, align=3, overlap=0.5, pad_mode=pad_mode, sw_batch_size=4
        )
    assert whole.shape == stitched.shape == (2, 3, 35, 29, 26)
    assert torch.allclose(stitched, whole, atol=1e-5)


def test_windows_off_the_pooling_grid_do_not_stitch_exactly(deepmedic: torch.nn.Module) -> None:
    # align=1 lets windows start at 0, 10, 13: DeepMedic is only equivariant to shifts by 3.
    x = torch.randn(1, 1, 33, 18, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = SameSizeOutput(deepmedic, margin=24, align=3)(x)
        stitched = valid_sliding_window_inference(x, deepmedic, (20, 18, 18), 24, align=1, overlap=0.5)
    assert (stitched - whole).abs().max() > 1e-3


def test_window_must_be_aligned(deepmedic: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="multiples of 3"):
        valid_sliding_window_inference(torch.zeros(1, 1, 30, 30, 30), deepmedic, (16, 15, 15), 24, align=3)
