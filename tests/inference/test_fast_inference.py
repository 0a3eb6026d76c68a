"""The fast inference path agrees with MONAI's sliding windows (numbers, not timings).

Timings live in ``benchmarks/``; here: the blend equals MONAI's, compact float16 sums and the slab
accumulator change nothing that matters, the foreground box, the engines, the Predictor's default
against its MONAI path, slab-wise resampling and the finish helpers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from monai.transforms import SpatialResample
from predictor_helpers import sphere_volume, trained_state, write_model_folder

from medseg.errors import ConfigError
from medseg.evaluation.uncertainty import predictive_entropy
from medseg.inference.engine import (
    AutocastWindows,
    onnx_network,
    onnxruntime_available,
    resolve_precision,
    select_engine,
)
from medseg.inference.finish import first_argmax, normalised_entropy, slabs, to_source_grid
from medseg.inference.predictor import Predictor
from medseg.types import Volume
from medseg.windows.blend import (
    SlabSums,
    foreground_box,
    sliding_window_probabilities,
    window_starts,
)

RAS = np.diag([1.5, 1.5, 1.5, 1.0])


def _network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(4, 8), strides=(2,), num_res_units=1).eval()


def _image(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, *shape), generator=generator)


def _monai_probabilities(image: torch.Tensor, network: torch.nn.Module, window: tuple[int, ...]) -> torch.Tensor:
    with torch.inference_mode():
        logits = sliding_window_inference(image[None], window, 2, network, overlap=0.25, mode="gaussian")
        return torch.softmax(logits[0], dim=0)


@pytest.mark.parametrize("shape", [(40, 36, 28), (12, 20, 16)])  # several windows; smaller than one (padding)
def test_blend_equals_monai_sliding_window(shape: tuple[int, int, int]) -> None:
    network, image = _network(), _image(shape)
    expected = _monai_probabilities(image, network, (16, 16, 16))
    with torch.inference_mode():
        got = sliding_window_probabilities(image, network, (16, 16, 16), overlap=0.25, batch_size=3, crop=False,
                                           accumulate_dtype=torch.float32)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_float16_sums_keep_the_mask() -> None:
    network, image = _network(1), _image((40, 36, 28), 1)
    expected = _monai_probabilities(image, network, (16, 16, 16))
    with torch.inference_mode():
        got = sliding_window_probabilities(image, network, (16, 16, 16), crop=False, accumulate_dtype=torch.float16)
    assert float((got - expected).abs().max()) < 5e-3
    assert float((got.argmax(0) == expected.argmax(0)).float().mean()) > 0.999
    np.testing.assert_allclose(got.sum(0).numpy(), 1.0, atol=1e-5)


def test_slab_sums_equal_a_plain_sum_across_block_borders() -> None:
    sums = SlabSums(2, (21, 6, 5), torch.float32, planes=4)
    plain = torch.zeros((2, 21, 6, 5))
    generator = torch.Generator().manual_seed(0)
    for start in (0, 3, 7, 13):
        where = (slice(start, start + 8), slice(1, 5), slice(0, 5))
        values = torch.rand((2, 8, 4, 5), generator=generator)
        sums.add(where, values)
        plain[(slice(None), *where)] += values
    blocks = [sums.take(i) for i in range(len(sums.blocks))]
    assert [a for a, _ in blocks] == [0, 4, 8, 12, 16, 20] and sums.blocks == [None] * 6
    np.testing.assert_allclose(torch.cat([b for _, b in blocks], dim=1).numpy(), plain.numpy())


def test_window_starts_follow_monai() -> None:
    assert window_starts(256, 96, 0.25) == [0, 72, 144, 160]
    assert window_starts(96, 96, 0.25) == [0]


def test_foreground_box_finds_the_object_with_its_margin() -> None:
    image = torch.zeros((1, 60, 50, 40))
    image[0, 20:30, 10:20, 5:15] = 100.0
    assert foreground_box(image, margin=3) == (slice(17, 33), slice(7, 23), slice(2, 18))
    assert foreground_box(torch.zeros((1, 20, 20, 20)), margin=3) == (slice(0, 0),) * 3
    assert foreground_box(torch.rand((1, 20, 20, 20)) + 10.0, margin=3) is None  # all foreground: no crop
    ct = torch.full((1, 60, 50, 40), -1000.0)  # air around a body: the background is the border's level
    ct[0, 5:55, 8:42, :] = 40.0
    assert foreground_box(ct, margin=2) is None or foreground_box(ct, margin=2)[0] == slice(3, 57)


def test_crop_fills_the_outside_with_the_constant_window_answer() -> None:
    network = _network(2)
    image = torch.zeros((1, 48, 48, 48))
    image[0, 20:28, 20:28, 20:28] = 3.0
    with torch.inference_mode():
        got = sliding_window_probabilities(image, network, (16, 16, 16), crop=True, margin=2)
        constant = torch.softmax(network(torch.zeros((1, 1, 16, 16, 16)))[0, :, 8, 8, 8], dim=0)
    np.testing.assert_allclose(got[:, 0, 0, 0].numpy(), constant.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.sum(0).numpy(), 1.0, atol=1e-5)


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime is not installed")
def test_onnxruntime_windows_agree_with_torch() -> None:
    network, batch = _network(3), _image((16, 16, 16), 3)[None]
    windows = onnx_network(network, 1, (16, 16, 16))
    with torch.inference_mode():
        expected = network(batch)
    np.testing.assert_allclose(windows(batch).numpy(), expected.numpy(), atol=1e-4)
    assert windows(torch.cat([batch, batch])).shape == (2, 3, 16, 16, 16)  # dynamic batch axis


def test_channels_last_windows_give_the_same_logits_and_leave_the_network_alone() -> None:
    from medseg.networks import get_network_spec
    from medseg.networks.deepmedic import DeepMedic

    torch.manual_seed(0)
    network = DeepMedic(1, 3, channels=(6, 6, 8, 8), fc_channels=(8,), residual_layers=(4,)).eval()
    batch = _image((31, 31, 31))[None]
    plain, channels_last = AutocastWindows(network), AutocastWindows(network, channels_last=True)
    with torch.inference_mode():
        expected, got = plain(batch), channels_last(batch)
    assert got.is_contiguous() and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=0.05)  # bfloat16 rounding only
    assert network.normal.layers[1][2].weight.is_contiguous()  # the caller's network keeps its layout
    assert channels_last.network.normal.layers[1][2].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert get_network_spec("deepmedic").channels_last and not get_network_spec("unet").channels_last
    windows = select_engine("torch", network, torch.device("cpu"), 1, (31, 31, 31), "bfloat16", channels_last=True)
    assert isinstance(windows, AutocastWindows) and windows.channels_last


def test_engine_and_precision_choices() -> None:
    network = _network()
    cpu = torch.device("cpu")
    assert select_engine("torch", network, cpu, 1, (16, 16, 16), "float32") is network
    assert isinstance(select_engine("auto", network, cpu, 1, (16, 16, 16), "bfloat16"), AutocastWindows)
    with pytest.raises(ConfigError, match="engine"):
        select_engine("tensorrt", network, cpu, 1, (16, 16, 16))
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("float8", cpu)
    with pytest.raises(ConfigError, match="float32 only"):
        select_engine("onnxruntime", network, cpu, 1, (16, 16, 16), "bfloat16")
    assert resolve_precision("auto", cpu) in ("float32", "bfloat16")


def test_bfloat16_windows_stay_close_to_float32() -> None:
    network, batch = _network(4), _image((16, 16, 16), 4)[None]
    with torch.inference_mode():
        expected = torch.softmax(network(batch), 1)
        got = torch.softmax(AutocastWindows(network)(batch), 1)
    assert got.dtype == torch.float32 and float((got - expected).abs().max()) < 0.05


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("fast") / "tiny", trained_state())


def test_predictor_default_path_agrees_with_its_monai_path(model_dir: Path) -> None:
    volume = sphere_volume(RAS, centre=(9, 12, 14), radius=5)
    monai_path = Predictor.from_model(model_dir, fast=False).predict(volume)
    exact = Predictor.from_model(model_dir, precision="float32", engine="torch").predict(volume)
    np.testing.assert_allclose(exact.probabilities, monai_path.probabilities, atol=1e-5)
    np.testing.assert_allclose(exact.uncertainty, monai_path.uncertainty, atol=1e-5)
    default = Predictor.from_model(model_dir).predict(volume)  # bfloat16 where the CPU has it
    assert (default.labels.array == monai_path.labels.array).mean() > 0.99
    assert np.array_equal(default.labels.affine, volume.affine)


def test_slab_resampling_equals_one_whole_resample() -> None:
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.rand((2, 20, 80, 80), generator=generator)
    probabilities /= probabilities.sum(0, keepdim=True)
    grid = np.diag([2.0, 2.0, 2.0, 1.0])
    source = np.diag([1.0, 1.0, 1.0, 1.0])
    source[:3, 3] = [0.3, -0.2, 0.1]
    volume = Volume(np.zeros((1, 40, 160, 160), dtype=np.float32), source)  # 1.02 M voxels: 2 slabs
    assert len(slabs(volume.spatial_shape)) == 2
    got = to_source_grid(probabilities, grid, volume)
    resample = SpatialResample(mode="bilinear", padding_mode="border", align_corners=False, dtype=torch.float32)
    whole = resample(MetaTensor(probabilities, affine=torch.as_tensor(grid)), dst_affine=torch.as_tensor(source),
                     spatial_size=volume.spatial_shape).as_tensor().numpy()
    whole = np.clip(whole, 0, None)
    whole /= whole.sum(0, keepdims=True)
    np.testing.assert_allclose(got, whole, atol=1e-5)


def test_finish_helpers_equal_argmax_and_predictive_entropy() -> None:
    values = torch.rand((4, 10, 11, 12), generator=torch.Generator().manual_seed(0))
    values[1, 0, 0, 0] = values[2, 0, 0, 0] = 2.0  # a tie: the first class wins, as in argmax
    values /= values.sum(0, keepdim=True)
    assert torch.equal(first_argmax(values).long(), values.argmax(0))
    np.testing.assert_allclose(normalised_entropy(values).numpy(), predictive_entropy(values.numpy()), atol=1e-5)
