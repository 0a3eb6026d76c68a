"""Ensemble model folders: the weighted mean of members on their own grids, and every way a member can be wrong."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_helpers import (
    oblique_affine,
    save_nifti,
    sphere_volume,
    write_model_folder,
)

from medseg.errors import ConfigError, InputError, OutputError
from medseg.inference.ensemble import add_member, remove_member
from medseg.inference.model_folder import load_model_folder
from medseg.inference.predictor import Predictor
from medseg_cli.main import build_parser, main
from medseg_cli.predict_command import _predictor_options


def test_an_ensemble_predicts_the_weighted_mean_of_its_members_on_the_scan_grid(folders: tuple[Path, Path]) -> None:
    own, member = folders
    volume = sphere_volume(oblique_affine(1.5), centre=(11.0, 12.5, 10.0))
    alone = Predictor.from_model(own).predict(volume).probabilities
    coarse = Predictor.from_model(member).predict(volume).probabilities  # its own grid and temperature
    assert np.abs(alone - coarse).max() > 0.05  # two different opinions, or the test proves nothing
    add_member(own, member, 0.3)
    ensemble = Predictor.from_model(own)
    seen: list[float] = []
    prediction = ensemble.predict(volume, progress=seen.append)
    np.testing.assert_allclose(prediction.probabilities, 0.7 * alone + 0.3 * coarse, atol=1e-5)
    np.testing.assert_array_equal(prediction.labels.array, np.argmax(0.7 * alone + 0.3 * coarse, axis=0))
    np.testing.assert_array_equal(prediction.labels.affine, volume.affine)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 4
    np.testing.assert_allclose(Predictor.from_model(own, ensemble=False).predict(volume).probabilities, alone,
                               atol=1e-6)  # `medseg predict --no-ensemble`
    args = build_parser().parse_args(["predict", "STUDY", "--model", str(own), "--out", "OUT", "--no-ensemble"])
    assert _predictor_options(args) == {"ensemble": False}


def test_a_batch_case_names_the_networks_behind_it(folders: tuple[Path, Path], tmp_path: Path) -> None:
    own, member = folders
    add_member(own, member, 0.25)
    study = tmp_path / "study"
    study.mkdir()
    save_nifti(sphere_volume(oblique_affine(1.5)), study / "scan.nii.gz")
    for flag, expected in (([], [{"network": "own", "weight": 0.75}, {"network": "coarse", "weight": 0.25}]),
                           (["--no-ensemble"], [{"network": "own", "weight": 1.0}])):
        out = tmp_path / f"out{len(flag)}"
        assert main(["predict", str(study), "--model", str(own), "--out", str(out), "--no-progress", *flag]) == 0
        (case_dir,) = [p for p in out.iterdir() if p.is_dir()]
        assert json.loads((case_dir / "case.json").read_text())["networks"] == expected


def test_members_can_be_added_replaced_and_removed_and_their_weights_follow(
    folders: tuple[Path, Path], tmp_path: Path, state: dict[str, torch.Tensor], capsys: pytest.CaptureFixture,
) -> None:
    own, member = folders
    third = write_model_folder(tmp_path / "third", state)
    model = add_member(own, member, 0.5)
    assert [(m.name, m.weight) for m in model.card.ensemble] == [("coarse", 0.5)] and model.card.own_weight == 0.5
    assert model.members[0].temperature == pytest.approx(1.6)  # the member's calibration travels with it
    model = add_member(own, third, 0.2, name="fine")
    assert [(m.name, round(m.weight, 6)) for m in model.card.ensemble] == [("coarse", 0.4), ("fine", 0.2)]
    assert model.card.own_weight == pytest.approx(0.4)
    with pytest.raises(OutputError, match="already has a member 'fine'"):
        add_member(own, third, 0.5, name="fine")
    model = add_member(own, third, 0.1, name="fine", replace_existing=True)  # as removing it, then adding it
    assert [(m.name, round(m.weight, 6)) for m in model.card.ensemble] == [("coarse", 0.45), ("fine", 0.1)]
    model = remove_member(own, "coarse")
    assert [(m.name, round(m.weight, 6)) for m in model.card.ensemble] == [("fine", round(0.1 / 0.55, 6))]
    assert sorted(p.name for p in (own / "members").iterdir()) == ["fine"]  # no stray temporary folders
    assert main(["ensemble", str(own)]) == 0
    out = capsys.readouterr().out
    assert "own network: unet, 1.5 x 1.5 x 1.5 mm, T 1, weight 0.818" in out and "member fine" in out
    assert main(["ensemble", str(own), "--add", str(member), "--weight", "1.5"]) == 2
    assert "weight must be a number in (0, 1)" in capsys.readouterr().err


def test_a_member_is_checked_like_any_model_folder_and_never_runs_code(
    folders: tuple[Path, Path], tmp_path: Path,
) -> None:
    own, member = folders
    add_member(own, member, 0.5)
    card_path = own / "model_card.json"
    card = json.loads(card_path.read_text())
    for name in ("../coarse", "/tmp/coarse", "..", "a/b"):
        card_path.write_text(json.dumps({**card, "ensemble": [{"member": name, "weight": 0.5}]}))
        with pytest.raises(InputError, match="plain folder name"):
            load_model_folder(own)
    for entry, message in (([{"member": "coarse", "weight": 1.0}], "in \\(0, 1\\)"),
                           ([{"member": "coarse", "weight": 0.5, "code": "x"}], "'member', 'weight' and optionally 'role'"),
                           ([{"member": "coarse", "weight": 0.6}, {"member": "other", "weight": 0.6}], "sum to less")):
        card_path.write_text(json.dumps({**card, "ensemble": entry}))
        with pytest.raises(InputError, match=message):
            load_model_folder(own)
    card_path.write_text(json.dumps({**card, "ensemble": [{"member": "gone", "weight": 0.5}]}))
    with pytest.raises(InputError, match="member 'gone' but the folder is missing"):
        load_model_folder(own)
    card_path.write_text(json.dumps(card))

    # A pickled payload in a member's weights is refused, and its code never runs.
    target = tmp_path / "keep-me"
    target.write_text("x")
    weights = own / "members" / "coarse" / "weights.pt"
    saved = weights.read_bytes()
    with open(weights, "wb") as handle:
        pickle.dump({"w": _Exploit(target)}, handle)
    with pytest.raises(InputError, match="weights"):
        load_model_folder(own)
    assert target.exists()
    weights.write_bytes(saved)

    # Another model's classes, a nested ensemble, and another runtime are refused with the reason.
    member_card = own / "members" / "coarse" / "model_card.json"
    good = member_card.read_text()
    member_card.write_text(good.replace('"sphere"', '"tumour"'))
    with pytest.raises(InputError, match="segments \\['background', 'tumour'\\]"):
        load_model_folder(own)
    member_card.write_text(good)
    nested = tmp_path / "nested"
    shutil.copytree(own, nested)
    with pytest.raises(InputError, match="cannot be a member of another ensemble"):
        add_member(member, nested, 0.5)
    with pytest.raises(ConfigError, match="runs with runtime 'torch'"):
        Predictor.from_model(own, runtime="onnx")


class _Exploit:
    """Unpickling this would delete ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        import os

        return (os.remove, (str(self.target),))
