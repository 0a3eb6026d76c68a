"""Predictor options: mirror TTA, temperature, largest component, QC flags, progress and cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_helpers import (
    mirror_symmetric_state,
    reference,
    sphere_image,
    sphere_volume,
    tiny_config,
    write_model_folder,
)

from medseg.errors import Cancelled, InputError
from medseg.evaluation.calibration import save_calibration
from medseg.inference.predictor import Predictor
from medseg.types import Volume

RAS = np.diag([1.5, 1.5, 1.5, 1.0])




@pytest.fixture(scope="module")
def model_dir(state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("model") / "tiny", state, qc=reference())


def _symmetric_volume() -> Volume:
    """A centred sphere without noise: the same image after a flip along any axis."""
    image, _ = sphere_image(24, radius=6.0, noise=0.0)
    return Volume(image[None], RAS.copy(), ("MR",))


def test_tta_changes_nothing_for_a_symmetric_input_and_is_deterministic(model_dir: Path) -> None:
    volume = _symmetric_volume()
    for axis in (1, 2, 3):
        assert np.array_equal(np.flip(volume.array, axis), volume.array)
    tta = Predictor.from_model(model_dir, tta=True)
    first, second = tta.predict(volume), tta.predict(volume)
    assert np.array_equal(first.probabilities, second.probabilities)
    # The trained network is only nearly mirror-equivariant: the mask changes by under 1 % of voxels
    # (the exact statement is the next test's, with an equivariant network).
    plain = Predictor.from_model(model_dir).predict(volume)
    assert (first.labels.array != plain.labels.array).mean() < 0.01


@pytest.mark.parametrize("symmetric_input", [True, False])
def test_tta_gives_back_the_plain_prediction_of_a_mirror_equivariant_network(
    tmp_path: Path, symmetric_input: bool
) -> None:
    config = tiny_config(network__strides=[1])
    folder = write_model_folder(tmp_path / "mirror", mirror_symmetric_state(config), config)
    volume = _symmetric_volume() if symmetric_input else sphere_volume(RAS, centre=(9, 12, 14), radius=5)
    # float32: the statement is exact; bfloat16 windows (the default on CPUs with native bf16) round.
    plain = Predictor.from_model(folder, precision="float32").predict(volume)
    tta = Predictor.from_model(folder, tta=True, precision="float32").predict(volume)
    # Each mirrored pass is flipped back onto the input: a missing or wrong flip-back would move the mask.
    np.testing.assert_allclose(tta.probabilities, plain.probabilities, atol=1e-5)
    assert np.array_equal(tta.labels.array, plain.labels.array) and plain.labels.array.sum() > 100


def test_tta_averages_the_softmax_of_the_four_mirrored_passes(model_dir: Path) -> None:
    predictor = Predictor.from_model(model_dir, tta=True, precision="float32")
    volume = sphere_volume(RAS, centre=(9, 12, 14), radius=5)
    image = torch.from_numpy(volume.array)
    image = (image - image.mean()) / image.std()  # zscore over non-zero voxels = all voxels here
    expected = sum(torch.softmax(predictor.predict_logits(image, flips=f), 0) for f in ((), (2,), (3,), (4,))) / 4
    np.testing.assert_allclose(predictor.predict(volume).probabilities, expected.numpy(), atol=1e-5)


def test_temperature_from_calibration_json_flattens_the_probabilities(
    state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    volume = sphere_volume(RAS, centre=(10, 12, 13), radius=5)
    folder = write_model_folder(tmp_path / "calibrated", state)
    sharp = Predictor.from_model(folder).predict(volume)
    save_calibration(folder, 2.0, 0.1, 0.05)
    predictor = Predictor.from_model(folder)
    assert predictor.temperature == 2.0
    soft = predictor.predict(volume)
    assert np.array_equal(soft.labels.array, sharp.labels.array)
    assert soft.probabilities.max(axis=0).mean() < sharp.probabilities.max(axis=0).mean() - 0.01
    assert (soft.probabilities.max(axis=0) <= sharp.probabilities.max(axis=0) + 1e-6).all()
    assert soft.uncertainty.mean() > sharp.uncertainty.mean()
    # softmax(logits / 2) from softmax(logits): p_c^(1/2), renormalised.
    root = np.sqrt(sharp.probabilities.astype(np.float64))
    np.testing.assert_allclose(soft.probabilities, root / root.sum(axis=0), atol=1e-4)


def test_largest_component_removes_a_stray_blob(model_dir: Path) -> None:
    big, big_mask = sphere_image(24, (8, 8, 8), 5.0)
    small, small_mask = sphere_image(24, (19, 19, 19), 2.5)
    image = np.where(small_mask, small, big)
    volume = Volume(image[None], RAS.copy(), ("MR",))
    plain = Predictor.from_model(model_dir).predict(volume)
    assert plain.labels.array[small_mask].sum() > 0  # the stray blob is found without clean-up
    cleaned = Predictor.from_model(model_dir, largest_component=True).predict(volume)
    assert cleaned.labels.array[small_mask].sum() == 0
    assert np.array_equal(cleaned.labels.array[big_mask], plain.labels.array[big_mask])
    assert cleaned.class_volumes_ml["sphere"] < plain.class_volumes_ml["sphere"]


def test_qc_flags_an_empty_prediction(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    silent = dict(state)
    silent["model.2.conv.weight"] = torch.zeros_like(state["model.2.conv.weight"])
    silent["model.2.conv.bias"] = torch.tensor([20.0, -20.0])  # background everywhere
    predictor = Predictor.from_model(write_model_folder(tmp_path / "silent", silent, qc=reference()))
    prediction = predictor.predict(sphere_volume(RAS, centre=(10, 12, 13), radius=5))
    assert prediction.labels.array.max() == 0
    assert prediction.qc_flags == ("empty prediction",)
    assert prediction.class_volumes_ml == {"sphere": 0.0}
    assert np.isnan(prediction.mean_uncertainty)


def test_qc_passes_a_typical_scan_and_flags_volume_and_spacing_out_of_range(
    state: dict[str, torch.Tensor], model_dir: Path, tmp_path: Path
) -> None:
    volume = sphere_volume(RAS, centre=(10, 12, 13), radius=5)
    typical = Predictor.from_model(model_dir).predict(volume)
    assert typical.qc_flags == ()
    narrow = write_model_folder(tmp_path / "narrow", state, qc=reference(class_volume_ml={"sphere": (10.0, 20.0)}))
    flags = Predictor.from_model(narrow).predict(volume).qc_flags
    assert len(flags) == 1 and flags[0].startswith("volume out of range: sphere")
    coarse = Volume(volume.array, np.diag([5.0, 5.0, 1.5, 1.0]), volume.channel_names)
    flags = Predictor.from_model(model_dir).predict(coarse).qc_flags
    assert any(f.startswith("spacing out of range: 5 x 5 x 1.5 mm") for f in flags)
    assert any(f.startswith("shape out of range") for f in flags)  # 120 mm field of view vs 20-60 mm


def test_progress_rises_to_one_and_cancel_raises_cancelled(model_dir: Path) -> None:
    predictor = Predictor.from_model(model_dir, tta=True)
    volume = sphere_volume(RAS)
    seen: list[float] = []
    predictor.predict(volume, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 4 * 8  # 4 passes x 8 windows
    calls = []

    def cancel_on_third_window() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        predictor.predict(volume, cancel=cancel_on_third_window)
    with pytest.raises(Cancelled):
        predictor.predict(volume, cancel=lambda: True)


def test_a_volume_with_the_wrong_number_of_channels_is_refused(model_dir: Path) -> None:
    volume = Volume(np.zeros((2, 24, 24, 24), np.float32), RAS.copy(), ("T1", "T2"))
    with pytest.raises(InputError, match=r"2 channel\(s\) but the model takes 1 \(MR\)"):
        Predictor.from_model(model_dir).predict(volume)


def test_contract_attributes(model_dir: Path) -> None:
    predictor = Predictor.from_model(model_dir)
    assert predictor.model_dir == model_dir
    assert predictor.class_names == ("background", "sphere") and predictor.modalities == ("MR",)
    assert predictor.class_colors[0] == (0.0, 0.0, 0.0) and len(predictor.class_colors) == 2
    assert not predictor.network.training
