"""The window runner's plans give the answers they promise (numbers, not timings)."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference

from medseg.config import NetworkConfig
from medseg.networks import SameSizeOutput, build_network, network_geometry
from medseg.networks.norm_statistics import with_norm_statistics
from medseg.windows import choose_plan, predict_logits, run_plan, segment_volume, whole_volume


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _deepmedic(statistics: str = "running") -> tuple[NetworkConfig, torch.nn.Module]:
    config = NetworkConfig(name="deepmedic", out_channels=3, deepmedic_channels=(4, 4, 6),
                           deepmedic_fc_channels=(8,), deepmedic_residual_layers=(3,), norm_statistics=statistics)
    torch.manual_seed(0)
    network = build_network(config)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return config, with_norm_statistics(network.eval(), statistics)


def test_segments_equal_one_whole_volume_forward_for_deepmedic() -> None:
    config, network = _deepmedic()
    image = torch.randn((1, 20, 23, 17), generator=torch.Generator().manual_seed(1))
    geometry = network_geometry(config)  # margin 9, align 3
    with torch.inference_mode():
        expected = SameSizeOutput(network, geometry.margin, geometry.align)(image[None])[0]
        several = segment_volume(image, network, (6, 9, 6), geometry.margin, geometry.align).logits()
        one = segment_volume(image, network, (21, 24, 18), geometry.margin, geometry.align).logits()
    assert several.shape == expected.shape == (3, 20, 23, 17)
    torch.testing.assert_close(several, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(one, expected, atol=1e-4, rtol=1e-4)


def test_a_region_gets_the_whole_forward_inside_and_certain_class_0_outside() -> None:
    config, network = _deepmedic()
    image = torch.randn((1, 20, 23, 17), generator=torch.Generator().manual_seed(3))
    geometry = network_geometry(config)  # margin 9, align 3
    region = (slice(4, 11), slice(7, 15), slice(2, 9))
    seen: list[tuple[int, ...]] = []
    with torch.inference_mode():
        expected = SameSizeOutput(network, geometry.margin, geometry.align)(image[None])[0]

        def watched(batch: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(batch.shape[2:]))
            return network(batch)

        for segment in ((6, 9, 6), (21, 24, 18)):
            seen.clear()
            logits = segment_volume(image, watched, segment, geometry.margin, geometry.align, region=region).logits()
            assert logits.shape == expected.shape
            torch.testing.assert_close(logits[(slice(None), *region)], expected[(slice(None), *region)],
                                       atol=1e-4, rtol=1e-4)
            # the region widened to the pooling grid (3..12, 6..15, 0..9) is all that ran, each piece with its context
            assert sum((i - 18) * (j - 18) * (k - 18) for i, j, k in seen) == 9 * 9 * 9
            outside = torch.softmax(logits[:, :3, :, :], dim=0)
            assert bool((outside[0] == 1.0).all()) and bool((outside[1:] == 0.0).all())
        with pytest.raises(ValueError, match="empty region"):
            segment_volume(image, network, (6, 9, 6), geometry.margin, geometry.align,
                           region=(slice(4, 4), slice(0, 5), slice(0, 5)))


def test_misaligned_segments_would_not_stitch() -> None:
    """The alignment matters: segments of 5 (not a multiple of DeepMedic's 3) change the answer."""
    config, network = _deepmedic()
    image = torch.randn((1, 20, 20, 20), generator=torch.Generator().manual_seed(2))
    geometry = network_geometry(config)
    with torch.inference_mode():
        expected = SameSizeOutput(network, geometry.margin, geometry.align)(image[None])[0]
        wrong = segment_volume(image, network, (5, 5, 5), geometry.margin, 1).logits()
    assert float((wrong - expected).abs().max()) > 1e-3


def test_whole_volume_pads_and_crops_in_place() -> None:
    """A voxel-wise network: the whole-volume logits are its map of each voxel, on an odd-sized scan."""
    network = torch.nn.Conv3d(1, 2, kernel_size=1)
    image = torch.randn((1, 13, 10, 7), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        got = whole_volume(image, network, divisor=8).logits()
        expected = network(image[None])[0]
    torch.testing.assert_close(got, expected)
    probabilities = whole_volume(image, network, divisor=8, temperature=2.0).probabilities()
    torch.testing.assert_close(probabilities, torch.softmax(expected / 2.0, dim=0))


def test_windows_plan_equals_monai_and_validation_uses_the_runner() -> None:
    config = NetworkConfig(name="unet", out_channels=3, channels=(4, 8), strides=(2,), num_res_units=1,
                           norm="instance", window_size=(16, 16, 16))
    torch.manual_seed(0)
    network = build_network(config).eval()
    geometry = network_geometry(config)
    image = torch.randn((1, 30, 24, 20), generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = sliding_window_inference(image[None], (16, 16, 16), 1, network, overlap=0.25, mode="gaussian")
        plan = choose_plan("auto", config, geometry, (30, 24, 20), overlap=0.25)
        assert plan.kind == "windows"
        got = run_plan(image, network, plan, config, geometry).logits()
        validation = predict_logits(network, image[None], config, geometry, overlap=0.25)
    torch.testing.assert_close(got, expected[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(validation, expected, atol=1e-4, rtol=1e-4)


def test_whole_plan_agrees_with_sliding_windows_for_a_placement_invariant_unet() -> None:
    config = NetworkConfig(name="unet", out_channels=3, channels=(4, 8), strides=(2,), num_res_units=1,
                           norm="batch", norm_statistics="running", window_size=(16, 16, 16))
    torch.manual_seed(0)
    network = build_network(config).eval()
    geometry = network_geometry(config)
    image = torch.randn((1, 40, 32, 24), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        windows = sliding_window_inference(image[None], (16, 16, 16), 1, network, overlap=0.25, mode="gaussian")[0]
        plan = choose_plan("auto", config, geometry, (40, 32, 24), overlap=0.25)
        whole = run_plan(image, network, plan, config, geometry).logits()
    assert (plan.kind, plan.forwards) == ("whole", 1)
    inner = (slice(None), slice(4, -4), slice(4, -4), slice(4, -4))  # window borders see zero padding
    agree = (whole.argmax(0) == windows.argmax(0)).float().mean()
    # 16^3 windows see zero padding at their own borders, the whole volume only at the scan's: close, not equal.
    assert float(agree) > 0.9
    assert float((whole[inner] - windows[inner]).abs().mean()) < 0.2 * float(windows[inner].abs().mean())
