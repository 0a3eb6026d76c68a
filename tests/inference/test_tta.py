"""Mirror TTA averages only the flips the model was trained under (medseg.inference.tta)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_helpers import sphere_volume, tiny_config, trained_state, write_model_folder

from medseg.errors import ConfigError, InputError
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


def test_the_shipped_brain_models_mirror_left_right_only_and_the_unet_card_asks_for_it() -> None:
    for name, card_default in (("brain-tissue-unet", True), ("brain-tissue-deepmedic", False)):
        predictor = Predictor.from_model(REPO / "models" / name, tta=True)
        assert predictor.tta_flips == ((), (2,)), name
        assert Predictor.from_model(REPO / "models" / name, tta=False).tta_flips == ((),)
        assert Predictor.from_model(REPO / "models" / name).tta is card_default  # the card's inference.tta


def test_the_cards_tta_default_holds_unless_the_caller_says_otherwise(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "stream", trained_state(steps=1), tiny_config(**STREAM))
    assert Predictor.from_model(folder).tta is False  # no inference entry: off
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "inference": {"tta": True}}))
    assert Predictor.from_model(folder).tta is True and len(Predictor.from_model(folder).tta_flips) == 2
    assert Predictor.from_model(folder, tta=False).tta is False
    for bad, message in (({"tta": "yes"}, "inference.tta must be true or false"),
                         ({"tta": True, "passes": 4}, "'inference' takes only")):
        (folder / "model_card.json").write_text(json.dumps({**card, "inference": bad}))
        with pytest.raises(InputError, match=message):
            Predictor.from_model(folder)


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


def test_medseg_predict_runs_the_cards_tta_default_and_records_what_ran(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    from medseg_cli.main import main
    from predictor_helpers import save_nifti

    folder = write_model_folder(tmp_path / "stream", trained_state(steps=1), tiny_config(**STREAM))
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "inference": {"tta": True}}))
    scans = tmp_path / "scans"
    scans.mkdir()
    save_nifti(sphere_volume(RAS, centre=(9, 12, 14), radius=5), scans / "a.nii.gz")
    for flags, expected in (([], True), (["--no-tta"], False), (["--tta"], True)):
        out = tmp_path / f"out{len(flags)}{expected}"
        assert main(["predict", str(scans), "--model", str(folder), "--out", str(out), "--no-progress", *flags]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["options"]["tta"] is expected, flags
    capsys.readouterr()
    assert main(["models", str(folder)]) == 0
    assert "- mirror test-time augmentation: on by default" in capsys.readouterr().out
