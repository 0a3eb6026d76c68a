"""Mirror TTA averages only the flips the model was trained under (medseg.inference.tta)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_helpers import sphere_volume, tiny_config, trained_state, write_model_folder

from medseg.errors import ConfigError
from medseg.inference.predictor import Predictor
from medseg.inference.tta import ALL_AXES, left_right_dim, tta_flips

REPO = Path(__file__).resolve().parents[2]
RAS = np.diag([1.5, 1.5, 1.5, 1.0])
STREAM = {"data__synth__enabled": True, "data__synth__flip": True, "transforms__augment__enabled": False}


@pytest.mark.parametrize(("orientation", "dim"), [("RAS", 2), ("LPS", 2), ("PLS", 3), ("ASR", 4), ("", None)])
def test_left_right_dim_follows_the_axis_codes(orientation: str, dim: int | None) -> None:
    assert left_right_dim(orientation) == dim


def test_patch_augmentation_with_flips_mirrors_every_axis() -> None:
    assert tta_flips(tiny_config()) == ALL_AXES == ((), (2,), (3,), (4,))


def test_the_generative_stream_mirrors_left_right_only() -> None:
    assert tta_flips(tiny_config(**STREAM)) == ((), (2,))
    assert tta_flips(tiny_config(**STREAM, transforms__orientation="PLS")) == ((), (3,))


def test_no_flips_in_training_or_no_known_left_right_axis_is_refused() -> None:
    with pytest.raises(ConfigError, match="without mirror flips"):
        tta_flips(tiny_config(transforms__augment__flip=False))  # e.g. the CT phantom: left and right kidneys
    with pytest.raises(ConfigError, match="without mirror flips"):
        tta_flips(tiny_config(**{**STREAM, "data__synth__flip": False}))
    with pytest.raises(ConfigError, match="no axis of its grid is known to be left-right"):
        tta_flips(tiny_config(**STREAM, transforms__orientation=""))


def test_the_shipped_brain_models_mirror_left_right_only() -> None:
    for name in ("brain-tissue-unet", "brain-tissue-deepmedic"):
        predictor = Predictor.from_model(REPO / "models" / name, tta=True)
        assert predictor.tta_flips == ((), (2,)), name
        assert Predictor.from_model(REPO / "models" / name).tta_flips == ((),)


def test_a_stream_model_averages_the_plain_and_the_left_right_pass(tmp_path: Path) -> None:
    config = tiny_config(**STREAM)
    folder = write_model_folder(tmp_path / "stream", trained_state(steps=5), config)
    predictor = Predictor.from_model(folder, tta=True, precision="float32")
    volume = sphere_volume(RAS, centre=(9, 12, 14), radius=5)
    image = torch.from_numpy(volume.array)
    image = (image - image.mean()) / image.std()
    passes = [torch.softmax(predictor.predict_logits(image, flips=flip), 0) for flip in ((), (2,), (3,), (4,))]
    predicted = predictor.predict(volume).probabilities
    np.testing.assert_allclose(predicted, ((passes[0] + passes[1]) / 2).numpy(), atol=1e-5)
    # The front-back and up-down passes are not in the average (they differ from it on this asymmetric input).
    assert not np.allclose(predicted, (sum(passes) / 4).numpy(), atol=1e-3)
