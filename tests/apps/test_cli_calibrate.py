"""`medseg export-model` and `medseg calibrate` in-process, on real files.

Calibration is checked with the threshold network (``placement_helpers``) on noisy spheres (0 vs 100,
noise sd 30): its Bayes-calibrated slope is about 100 / 30^2 = 0.11 per intensity unit, so a gain of 1.0
is over-confident by about 9x (fitted T 9.0, ECE 0.043 -> 0.003) and a gain of 0.11 is already
calibrated (T 1.0).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from medseg_cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from placement_helpers import register_threshold_network, threshold_config, write_threshold_model  # noqa: E402
from predictor_helpers import train_tiny_run, write_sphere_dataset  # noqa: E402

from medseg.data.splits import Split, save_split  # noqa: E402
from medseg.inference.calibrate import calibrate_model  # noqa: E402
from medseg.inference.predictor import Predictor  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sphere_dataset(tmp_path_factory.mktemp("spheres") / "data")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dataset.json of 5 noisy spheres (0 vs 100, noise sd 30, 24^3 voxels of 1.5 mm), named sphere_000..004."""
    root = tmp_path_factory.mktemp("noisy")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    grid = np.indices((24, 24, 24))
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    training = []
    for index in range(5):
        inside = np.linalg.norm(grid - rng.uniform(9, 14, 3)[:, None, None, None], axis=0) <= 6
        image = (100.0 * inside + rng.normal(0.0, 30.0, inside.shape)).astype(np.float32)
        name = f"sphere_{index:03d}"
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), root / "labelsTr" / f"{name}.nii.gz")
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    content = {"name": "noisy", "modality": {"0": "MR"}, "labels": {"0": "background", "1": "bright"},
               "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(content), encoding="utf-8")
    return root / "dataset.json"


def _threshold_model(folder: Path, monkeypatch: pytest.MonkeyPatch, gain: float = 1.0) -> Path:
    """The two-class threshold model (bright above 50); gain 1.0: right answers, far too sure of them."""
    register_threshold_network(monkeypatch)
    return write_threshold_model(folder, threshold_config(spacing=[], network__out_channels=2), gain=gain)


def test_export_model_command(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = train_tiny_run(data, tmp_path / "run")
    status = main(["export-model", str(run), "--out", str(tmp_path / "model"), "--checkpoint", "last"])
    out = capsys.readouterr().out
    assert status == 0 and "classes background, sphere" in out and "majority baseline 0.0000" in out
    assert (tmp_path / "model" / "weights.pt").is_file()
    status = main(["export-model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "model2")])
    assert status == 2 and "no best checkpoint" in capsys.readouterr().err


def test_calibration_uses_only_validation_patients_and_fixes_an_overconfident_model(
    noisy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _threshold_model(tmp_path / "model", monkeypatch)
    split = save_split(Split(train=("sphere_000", "sphere_001"), val=("sphere_002", "sphere_003"),
                             test=("sphere_004",), seed=0), tmp_path / "split.json")
    # The test patient's files are garbage here: reading them would fail the calibration.
    shutil.copytree(noisy.parent, tmp_path / "data")
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / "data" / sub / "sphere_004.nii.gz").write_bytes(b"not a nifti")
    dataset = tmp_path / "data" / "dataset.json"
    result = calibrate_model(model, dataset, split, max_samples=20_000)
    assert result.cases == ("sphere_002", "sphere_003") and result.voxels == 20_000
    assert 7.0 < result.temperature < 11.0  # about 9x over-confident: T well above 1
    assert result.ece_before > 0.03 and result.ece_after < 0.2 * result.ece_before
    stored = json.loads((model / "calibration.json").read_text())
    assert stored["temperature"] == pytest.approx(result.temperature) and stored["ece_before"] > stored["ece_after"]
    assert Predictor.from_model(model).temperature == pytest.approx(result.temperature)


def test_a_calibrated_model_keeps_a_temperature_near_one(
    noisy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _threshold_model(tmp_path / "model", monkeypatch, gain=100.0 / 30.0**2)
    split = save_split(Split(train=("sphere_000",), val=("sphere_002", "sphere_003"), test=(), seed=0),
                       tmp_path / "split.json")
    result = calibrate_model(model, noisy, split, max_samples=20_000)
    assert 0.85 < result.temperature < 1.15 and result.ece_before < 0.01


def test_calibrate_command(noisy: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    model = _threshold_model(tmp_path / "model", monkeypatch)
    split = save_split(Split(train=("sphere_000",), val=("sphere_001",), test=(), seed=0), tmp_path / "split.json")
    status = main(["calibrate", str(model), "--data", str(noisy), "--split", str(split), "--max-voxels", "5000"])
    out = capsys.readouterr().out
    assert status == 0 and "from 5000 voxels of 1 validation case(s); ECE" in out
    assert json.loads((model / "calibration.json").read_text())["temperature"] > 5.0
    no_val = save_split(Split(train=("sphere_000",), val=(), test=("sphere_001",), seed=0), tmp_path / "none.json")
    status = main(["calibrate", str(model), "--data", str(noisy), "--split", str(no_val)])
    assert status == 2 and "the split has no validation patients" in capsys.readouterr().err
