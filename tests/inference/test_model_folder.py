"""Model folders: export from a real training run, loading, and every way a folder can be broken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from predictor_helpers import tiny_config, train_tiny_run, trained_state, write_model_folder, write_sphere_dataset

from medseg.data.splits import load_split
from medseg.errors import ConfigError, InputError, OutputError
from medseg.evaluation.calibration import save_calibration
from medseg.inference.ensemble import add_member
from medseg.inference.model_folder import export_model_folder, load_model_folder
from medseg.inference.predictor import Predictor
from medseg.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset.json, run folder) of a real one-epoch training run."""
    root = tmp_path_factory.mktemp("run")
    dataset = write_sphere_dataset(root / "data")
    return dataset, train_tiny_run(dataset, root / "run")


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "tiny", trained_state(steps=2))


class Exploit:
    """Unpickling this would delete ``target``: a stand-in for a malicious payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.remove, (str(self.target),))


def test_export_writes_a_folder_the_predictor_loads(run: tuple[Path, Path], tmp_path: Path) -> None:
    dataset, run_dir = run
    model = export_model_folder(run_dir, tmp_path / "models" / "spheres")
    assert sorted(p.name for p in model.iterdir()) == ["model.yaml", "model_card.json", "weights.pt"]
    assert not [p for p in model.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    folder = load_model_folder(model)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    for key, value in checkpoint["model"].items():
        assert torch.equal(folder.state_dict[key], value)
    assert folder.config.data.dataset_json == ""  # no machine paths in the model
    assert yaml.safe_load((model / "model.yaml").read_text())["network"]["channels"] == [2, 4]
    card = folder.card
    assert card.class_names == ("background", "sphere") and card.modalities == ("MR",) and card.network == "unet"
    assert card.colors == ("#000000", "#e6194b")
    history = checkpoint["history"][-1]
    assert card.training["epochs"] == 1 and card.training["seed"] == 0
    assert card.training["validation"]["sphere"]["dice"] == pytest.approx(history["val_dice_sphere"])
    assert card.training["validation"]["sphere"]["baseline_dice"] == pytest.approx(history["baseline_dice_sphere"])
    assert card.training["data"]["patients"] == {"train": 3, "val": 1, "test": 1}
    assert card.training["training_seconds"] >= 0 and card.training["versions"]["torch"] == torch.__version__


def test_qc_ranges_come_from_the_training_split_only(run: tuple[Path, Path], tmp_path: Path) -> None:
    dataset, run_dir = run
    split = load_split(run_dir / "split.json")
    volumes = {}
    for case in sorted((dataset.parent / "labelsTr").iterdir()):
        image = nib.load(case)
        volumes[case.name.split(".")[0]] = float(np.asarray(image.dataobj).sum()) * 1.5**3 / 1000.0
    qc = load_model_folder(export_model_folder(run_dir, tmp_path / "m")).card.qc
    train = [volumes[p] for p in split.train]
    assert qc.cases == len(split.train) == 3
    assert qc.class_volume_ml["sphere"] == pytest.approx((min(train) * 0.5, max(train) * 1.5))
    assert qc.spacing_mm == ((1.0, 2.25),) * 3


def test_export_is_idempotent_keeps_calibration_and_refuses_a_different_model(
    run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, run_dir = run
    model = export_model_folder(run_dir, tmp_path / "m")
    save_calibration(model, 1.7, 0.2, 0.1)
    add_member(model, write_model_folder(tmp_path / "member", trained_state(steps=1)), 0.25)
    export_model_folder(run_dir, model)  # same weights: fine, calibration and ensemble members kept
    assert load_model_folder(model).temperature == 1.7
    assert [m.name for m in load_model_folder(model).card.ensemble] == ["member"]
    assert load_model_folder(model).card.own_weight == 0.75
    shutil.rmtree(tmp_path / "member")
    other = write_model_folder(tmp_path / "other", trained_state(steps=1))
    with pytest.raises(OutputError, match="already holds a different model"):
        export_model_folder(run_dir, other)
    assert load_model_folder(other).card.name == "other"  # untouched
    export_model_folder(run_dir, other, overwrite=True, checkpoint="last")
    assert load_model_folder(other).card.training["checkpoint"] == "last"
    assert not (other / "calibration.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "other"]


def test_export_errors_name_the_problem(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    with pytest.raises(InputError, match="no best checkpoint"):
        export_model_folder(tmp_path / "not-a-run", tmp_path / "m")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    moved = tmp_path / "moved-run"
    shutil.copytree(run_dir, moved)
    checkpoint = load_checkpoint(moved / "checkpoints" / "best.pt")
    checkpoint["config"]["data"]["dataset_json"] = str(tmp_path / "gone" / "dataset.json")
    torch.save(checkpoint, moved / "checkpoints" / "best.pt")
    with pytest.raises(InputError, match="not available for the QC ranges.*--no-qc"):
        export_model_folder(moved, tmp_path / "m")
    assert load_model_folder(export_model_folder(moved, tmp_path / "m", qc_reference=False)).card.qc is None
    assert config["network"]["name"] == "unet"


def test_export_records_the_foreground_opening_and_refuses_it_alone(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    model = export_model_folder(run_dir, tmp_path / "opened", largest_foreground=True, foreground_opening_mm=10.0)
    assert load_model_folder(model).card.postprocess.foreground_opening_mm == 10.0
    assert Predictor.from_model(model).clean_up.foreground_opening_mm == 10.0
    assert Predictor.from_model(model, foreground_opening_mm=0).clean_up.foreground_opening_mm == 0.0
    with pytest.raises(ConfigError, match="foreground_opening_mm"):
        Predictor.from_model(model, foreground_opening_mm=-3)
    with pytest.raises(ConfigError, match="needs --largest-foreground"):
        export_model_folder(run_dir, tmp_path / "alone", foreground_opening_mm=10.0)
    with pytest.raises(ConfigError, match="must be in"):
        export_model_folder(run_dir, tmp_path / "wide", largest_foreground=True, foreground_opening_mm=80.0)


def test_export_refuses_a_bias_field_or_prior_weight_without_the_refinement(run: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    """(This run has one foreground class, so it cannot be refined; the shipped brain cards carry both:
    tests/models/test_refinement_on_real_scans.py.)"""
    _, run_dir = run
    with pytest.raises(ConfigError, match="--bias-field: needs --refine-intensity"):
        export_model_folder(run_dir, tmp_path / "alone", bias_field="em")
    with pytest.raises(ConfigError, match="--prior-weight: needs --refine-intensity"):
        export_model_folder(run_dir, tmp_path / "alone", prior_weight=0.5)
    with pytest.raises(ConfigError, match="--stripped-background-odds"):
        export_model_folder(run_dir, tmp_path / "alone", stripped_background_odds=0.0)
    assert not (tmp_path / "alone").exists()
    lowered = export_model_folder(run_dir, tmp_path / "lowered", stripped_background_odds=0.2)
    assert load_model_folder(lowered).card.postprocess.stripped_background_odds == 0.2
    assert Predictor.from_model(lowered).stripped_background_odds == 0.2
    with pytest.raises(ConfigError, match="--head-background-odds"):
        export_model_folder(run_dir, tmp_path / "alone", head_background_odds=0.5)
    raised = export_model_folder(run_dir, tmp_path / "raised", head_background_odds=1.5)
    assert load_model_folder(raised).card.postprocess.head_background_odds == 1.5
    assert Predictor.from_model(raised).head_background_odds == 1.5
    assert Predictor.from_model(raised, head_background_odds=1.0).head_background_odds == 1.0


def test_load_refuses_missing_files(model_dir: Path) -> None:
    (model_dir / "weights.pt").unlink()
    with pytest.raises(InputError, match=r"weights\.pt: the model folder has no weights\.pt"):
        load_model_folder(model_dir)
    with pytest.raises(InputError, match="model folder not found"):
        load_model_folder(model_dir / "nowhere")


def test_load_refuses_weights_of_another_network(model_dir: Path) -> None:
    from medseg.networks import build_network

    bigger = build_network(tiny_config(network__channels=[4, 8]).network).state_dict()
    torch.save(bigger, model_dir / "weights.pt")
    with pytest.raises(InputError, match=r"do not fit the 'unet' network.*wrong shape: model\.0\.conv\.weight"):
        load_model_folder(model_dir)
    torch.save({"something": torch.zeros(1)}, model_dir / "weights.pt")
    with pytest.raises(InputError, match="missing: .*unexpected: something"):
        Predictor.from_model(model_dir)


def test_a_pickled_payload_is_refused_and_never_runs(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "still-here.txt"
    marker.write_text("the payload would delete this file")
    torch.save({"model.0.conv.weight": Exploit(marker)}, model_dir / "weights.pt")
    with pytest.raises(InputError, match="refused to load: the weights file holds pickled Python objects"):
        load_model_folder(model_dir)
    assert marker.exists()


def test_load_refuses_bad_config_card_and_calibration(model_dir: Path) -> None:
    config = yaml.safe_load((model_dir / "model.yaml").read_text())
    config["network"]["depth"] = 3
    (model_dir / "model.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match=r"model\.yaml: invalid model config: unknown key 'network\.depth'"):
        load_model_folder(model_dir)
    del config["network"]["depth"]
    (model_dir / "model.yaml").write_text(yaml.safe_dump(config))
    card = json.loads((model_dir / "model_card.json").read_text())
    card["class_names"] = ["background", "a", "b"]
    card["colors"] = ["#000000", "#ff0000", "#00ff00"]
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="3 classes but network.out_channels=2"):
        load_model_folder(model_dir)
    card["class_names"], card["colors"] = ["background", "a"], ["#000000", "red"]
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="'colors' must hold one '#rrggbb' per class"):
        load_model_folder(model_dir)
    card["colors"] = ["#000000", "#ff0000"]
    (model_dir / "model_card.json").write_text(json.dumps(card))
    (model_dir / "calibration.json").write_text('{"temperature": -1}')
    with pytest.raises(InputError, match="'temperature' must be a positive number"):
        load_model_folder(model_dir)
    (model_dir / "calibration.json").unlink()
    assert load_model_folder(model_dir).temperature == 1.0


def test_the_card_texts_for_people_come_from_the_command_and_survive_a_same_weights_export(
        run: tuple[Path, Path], tmp_path: Path) -> None:
    from medseg_cli.main import main

    _, run_dir = run
    model = tmp_path / "m"
    assert main(["model-folder", str(run_dir), "--out", str(model), "--description", "Spheres.",
                 "--intended-use", "Tests only.", "--limitation", "No real scans.", "--limitation", "No cubes.",
                 "--default-tta"]) == 0
    card = load_model_folder(model).card
    assert (card.description, card.intended_use, card.limitations) == ("Spheres.", "Tests only.",
                                                                       ("No real scans.", "No cubes."))
    export_model_folder(run_dir, model, largest_component=True)  # same weights, a clean-up setting changed
    card = load_model_folder(model).card
    assert card.postprocess.largest_component and card.tta
    assert (card.description, card.intended_use, card.limitations) == ("Spheres.", "Tests only.",
                                                                       ("No real scans.", "No cubes."))
    export_model_folder(run_dir, model, limitations=("Only this.",), tta=False)
    assert load_model_folder(model).card.limitations == ("Only this.",) and not load_model_folder(model).card.tta
    other = write_model_folder(tmp_path / "other", trained_state(steps=1))
    old = json.loads((other / "model_card.json").read_text())
    (other / "model_card.json").write_text(json.dumps({**old, "intended_use": "Another model's use."}))
    export_model_folder(run_dir, other, overwrite=True)  # different weights: nothing of the old card stays
    assert load_model_folder(other).card.intended_use == ""
