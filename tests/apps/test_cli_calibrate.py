"""`medseg export-model` and `medseg calibrate` in-process, on real files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from medseg_cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from predictor_helpers import train_tiny_run, trained_state, write_model_folder, write_sphere_dataset  # noqa: E402

from medseg.data.splits import Split, save_split  # noqa: E402
from medseg.inference.calibrate import calibrate_model  # noqa: E402
from medseg.inference.predictor import Predictor  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sphere_dataset(tmp_path_factory.mktemp("spheres") / "data")


def _overconfident(folder: Path) -> Path:
    """The sphere model with its logits multiplied by 4: right answers, far too sure of them."""
    state = trained_state()
    state["model.2.conv.weight"] = state["model.2.conv.weight"] * 4.0
    state["model.2.conv.bias"] = state["model.2.conv.bias"] * 4.0
    return write_model_folder(folder, state)


def test_export_model_command(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = train_tiny_run(data, tmp_path / "run")
    status = main(["export-model", str(run), "--out", str(tmp_path / "model"), "--checkpoint", "last"])
    out = capsys.readouterr().out
    assert status == 0 and "classes background, sphere" in out and "majority baseline 0.0000" in out
    assert (tmp_path / "model" / "weights.pt").is_file()
    status = main(["export-model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "model2")])
    assert status == 2 and "no best checkpoint" in capsys.readouterr().err


def test_calibration_uses_only_validation_patients_and_lowers_ece(data: Path, tmp_path: Path) -> None:
    model = _overconfident(tmp_path / "model")
    split = save_split(Split(train=("sphere_000", "sphere_001"), val=("sphere_002", "sphere_003"),
                             test=("sphere_004",), seed=0), tmp_path / "split.json")
    # The test patient's files are garbage here: reading them would fail the calibration.
    shutil.copytree(data.parent, tmp_path / "data")
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / "data" / sub / "sphere_004.nii.gz").write_bytes(b"not a nifti")
    dataset = tmp_path / "data" / "dataset.json"
    result = calibrate_model(model, dataset, split, max_samples=20_000)
    assert result.cases == ("sphere_002", "sphere_003") and result.voxels == 20_000
    assert result.temperature > 1.2  # softens the over-confident model
    assert result.ece_after < result.ece_before
    stored = json.loads((model / "calibration.json").read_text())
    assert stored["temperature"] == pytest.approx(result.temperature) and stored["ece_before"] > stored["ece_after"]
    assert Predictor.from_model(model).temperature == pytest.approx(result.temperature)


def test_calibrate_command(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _overconfident(tmp_path / "model")
    split = save_split(Split(train=("sphere_000",), val=("sphere_001",), test=(), seed=0), tmp_path / "split.json")
    status = main(["calibrate", str(model), "--data", str(data), "--split", str(split), "--max-voxels", "5000"])
    out = capsys.readouterr().out
    assert status == 0 and "from 5000 voxels of 1 validation case(s); ECE" in out
    assert (model / "calibration.json").is_file()
    no_val = save_split(Split(train=("sphere_000",), val=(), test=("sphere_001",), seed=0), tmp_path / "none.json")
    status = main(["calibrate", str(model), "--data", str(data), "--split", str(no_val)])
    assert status == 2 and "the split has no validation patients" in capsys.readouterr().err
