"""An ensemble's outline member: it only raises the mean's background, by its weight, and a failed one is ignored."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from predictor_helpers import (
    oblique_affine,
    save_nifti,
    sphere_volume,
)

from medseg.inference.ensemble import add_member, remove_member
from medseg.inference.model_card import ensemble_members
from medseg.inference.outline_member import MAX_REMOVED_SHARE, trim_outline
from medseg.inference.predictor import Predictor
from medseg_cli.main import main


def _probabilities(background: list[float], gray: list[float]) -> np.ndarray:
    """(3, 1, 1, N): background, then two tissue classes splitting the rest as ``gray`` : 1 - ``gray``."""
    b, g = np.array(background, np.float32), np.array(gray, np.float32)
    return np.stack([b, (1 - b) * g, (1 - b) * (1 - g)]).reshape(3, 1, 1, -1)


def test_the_outline_member_only_raises_the_background_and_keeps_the_tissue_split() -> None:
    mean = _probabilities([0.1, 0.45, 0.6, 0.9, 0.0], [0.3, 0.5, 0.8, 0.2, 0.6])
    member_background = np.array([0.95, 0.1, 0.2, 1.0, 0.0], np.float32).reshape(1, 1, -1)
    trimmed = mean.copy()
    # the argmax's brain: voxels 0 and 4 (some tissue class above the background); voxel 0 is removed: share 1/2
    trim = trim_outline(trimmed, member_background, 0.5, "dm", max_removed_share=0.5)
    assert trim.applied and trim.removed_share == pytest.approx(1 / 2)
    expected_background = np.array([0.1 + 0.5 * 0.85, 0.45, 0.6, 0.9 + 0.5 * 0.1, 0.0])
    np.testing.assert_allclose(trimmed[0].ravel(), expected_background, atol=1e-6)
    np.testing.assert_allclose(trimmed.sum(axis=0), 1.0, atol=1e-6)
    # where the member sees tissue, nothing changes: it never adds tissue
    np.testing.assert_array_equal(trimmed[:, 0, 0, 1:3], mean[:, 0, 0, 1:3])
    # the tissue classes keep their proportions
    np.testing.assert_allclose(trimmed[1] / (1 - trimmed[0]), mean[1] / (1 - mean[0]), atol=1e-6)


def test_a_member_that_would_remove_much_of_the_brain_is_ignored_and_flagged() -> None:
    mean = _probabilities([0.05] * 9 + [0.9], [0.5] * 10)
    failed = np.array([0.95] * 3 + [0.0] * 7, np.float32).reshape(1, 1, -1)  # a third of the tissue "background"
    trimmed = mean.copy()
    trim = trim_outline(trimmed, failed, 0.5, "dm")
    assert not trim.applied and trim.removed_share == pytest.approx(3 / 9) and trim.removed_share > MAX_REMOVED_SHARE
    np.testing.assert_array_equal(trimmed, mean)
    assert "networks disagree on the brain's outline" in trim.qc_flag() and "33 %" in trim.qc_flag()
    assert trim_outline(mean.copy(), failed[..., :] * 0, 0.5, "dm").qc_flag() is None


def test_the_card_takes_one_outline_member_outside_the_means_weights() -> None:
    members = ensemble_members([{"member": "fine", "weight": 0.6}, {"member": "dm", "weight": 0.7, "role": "outline"}])
    assert [(m.name, m.weight, m.role) for m in members] == [("fine", 0.6, "mean"), ("dm", 0.7, "outline")]
    assert [m.to_dict() for m in members] == [{"member": "fine", "weight": 0.6},
                                              {"member": "dm", "weight": 0.7, "role": "outline"}]
    for bad, message in (([{"member": "dm", "weight": 0.5, "role": "max"}], "role must be one of mean, outline"),
                         ([{"member": "a", "weight": 0.5, "role": "outline"},
                           {"member": "b", "weight": 0.5, "role": "outline"}], "at most one outline member"),
                         ([{"member": "a", "weight": 0.5, "rôle": "outline"}], "optionally 'role'")):
        with pytest.raises(ValueError, match=message):
            ensemble_members(bad)


def test_an_ensemble_with_an_outline_member_trims_its_own_networks_background(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    own, member = folders
    volume = sphere_volume(oblique_affine(1.5), centre=(11.0, 12.5, 10.0))
    alone = Predictor.from_model(own).predict(volume).probabilities
    coarse = Predictor.from_model(member).predict(volume).probabilities
    expected = alone.copy()
    trim = trim_outline(expected, coarse[0], 0.6, "coarse", max_removed_share=1.0)
    assert np.abs(expected - alone).max() > 0.05  # the member changes something here, or the test proves nothing
    model = add_member(own, member, 0.6, role="outline")
    assert model.card.own_weight == 1.0 and [(m.name, m.weight, m.role) for m in model.card.ensemble] == [
        ("coarse", 0.6, "outline")]
    predictor = Predictor.from_model(own)
    assert predictor.network_weights == (1.0,) and predictor.outline_member[:2] == ("coarse", 0.6)
    prediction = predictor.predict(volume)
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-5)
    assert prediction.outline == trim and not any("outline" in flag for flag in prediction.qc_flags)
    # a member judged failed on a scan is ignored, and the scan is flagged
    never_applied = functools.partial(trim_outline, max_removed_share=-1.0)
    monkeypatch.setattr("medseg.inference.predictor.trim_outline", never_applied)
    prediction = predictor.predict(volume)
    np.testing.assert_allclose(prediction.probabilities, alone, atol=1e-6)
    assert not prediction.outline.applied and any("outline network (coarse)" in flag for flag in prediction.qc_flags)
    monkeypatch.undo()
    np.testing.assert_allclose(Predictor.from_model(own, ensemble=False).predict(volume).probabilities, alone,
                               atol=1e-6)
    # a second outline member is refused; removing it leaves no weights to renormalise
    with pytest.raises(ValueError, match="already has an outline member"):
        add_member(own, member, 0.3, name="other", role="outline")
    study = tmp_path / "study"
    study.mkdir()
    save_nifti(volume, study / "scan.nii.gz")
    assert main(["predict", str(study), "--model", str(own), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    (case_dir,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    case = json.loads((case_dir / "case.json").read_text())
    assert case["networks"] == [{"network": "own", "weight": 1.0}, {"network": "coarse", "role": "outline",
                                                                     "weight": 0.6}]
    assert case["outline_member"]["member"] == "coarse"
    assert main(["ensemble", str(own)]) == 0
    listing = capsys.readouterr().out
    assert "own network: unet, 1.5 x 1.5 x 1.5 mm, T 1, weight 1" in listing
    assert "member coarse: unet, 2 x 2 x 2 mm, T 1.6, weight 0.6 (outline member" in listing
    assert remove_member(own, "coarse").card.ensemble == ()
