"""A user's own Decathlon folder: two modalities (one 4D file, or one file per modality), five labels,
a patient with two studies; train -> model-folder -> predict -> evaluate through the CLI, no code change.

The structures differ only in the combination of the two channels (labels 2 and 4 share the T1
intensity, 1 and 5 too), so a model that segments them reads both modalities.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from medseg_cli.main import main

SIZE = 24
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
LABELS = ("background", "caudate", "putamen", "thalamus", "lesion", "ventricle")
T1 = (0.0, 40.0, 80.0, 120.0, 80.0, 40.0)      # per label; pairs share a T1 value...
FLAIR = (0.0, 100.0, 20.0, 60.0, 120.0, 10.0)  # ...and are told apart by FLAIR
TRAIN, TEST = 7, 2


def _labels(rng: np.random.Generator) -> np.ndarray:
    """Five blocks at jittered places on a head-like background region."""
    labels = np.zeros((SIZE,) * 3, dtype=np.uint8)
    corners = ((2, 2, 2), (13, 2, 2), (2, 13, 2), (13, 13, 2), (7, 7, 13))
    for value, corner in enumerate(corners, start=1):
        start = np.asarray(corner) + rng.integers(0, 3, size=3)
        labels[tuple(slice(s, s + 8) for s in start)] = value
    return labels


def _channels(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(I, J, K, 2) T1 and FLAIR with a brain-like background and noise."""
    t1 = np.asarray(T1, dtype=np.float32)[labels] + 20.0 + rng.normal(0.0, 6.0, labels.shape)
    flair = np.asarray(FLAIR, dtype=np.float32)[labels] + 30.0 + rng.normal(0.0, 6.0, labels.shape)
    return np.stack([t1, flair], axis=-1).astype(np.float32)


def _save(array: np.ndarray, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), path)
    return "./" + path.relative_to(path.parents[1]).as_posix()


def write_own_dataset(root: Path, layout: str) -> Path:
    """A Decathlon folder as a user would bring it; returns its dataset.json."""
    rng = np.random.default_rng(7)
    training, test = [], []
    for index in range(TRAIN + TEST):
        name = f"sub{index:02d}"
        labels = _labels(rng)
        image = _channels(labels, rng)
        part = "Tr" if index < TRAIN else "Ts"
        if layout == "4d":
            images: str | list[str] = _save(image, root / f"images{part}" / f"{name}.nii.gz")
        else:
            images = [_save(image[..., c], root / f"images{part}" / f"{name}_{c:04d}.nii.gz") for c in range(2)]
        label = _save(labels, root / f"labels{part}" / f"{name}.nii.gz")
        entry = {"image": images, "label": label}
        if index in (0, 1):  # one patient, two studies
            entry.update(case_id=f"{name}-visit{index + 1}", patient="patient-A")
        (training if part == "Tr" else test).append(entry)
    content = {"name": "own", "description": "two-channel synthetic data", "tensorImageSize": "4D",
               "modality": {"0": "T1", "1": "FLAIR"}, "labels": {str(i): n for i, n in enumerate(LABELS)},
               "numTraining": TRAIN, "numTest": TEST, "training": training, "test": test}
    (root / "dataset.json").write_text(json.dumps(content, indent=2))
    return root / "dataset.json"


def write_config(path: Path, epochs: int) -> Path:
    """A small experiment config next to the data, as a user writes one (relative data path)."""
    config = {
        "seed": 0,
        "data": {"dataset_json": "dataset.json"},
        "network": {"name": "unet", "in_channels": 2, "out_channels": len(LABELS), "channels": [16, 32],
                    "strides": [2], "num_res_units": 1, "norm": "instance", "patch_size": [16, 16, 16],
                    "window_size": [24, 24, 24]},
        "loss": {"name": "dice_ce", "include_background": False},
        "transforms": {"orientation": "RAS", "normalize": "zscore", "augment": {"enabled": False}},
        "sampling": {"name": "class_ratios", "samples_per_case": 4},
        "split": {"val_fraction": 0.3, "test_fraction": 0.0, "seed": 0},
        "train": {"max_epochs": epochs, "batch_size": 4, "num_workers": 0, "val_every": epochs, "cache": "memory",
                  "progress": False, "device": "cpu", "optimizer": {"name": "adamw", "lr": 0.01},
                  "schedule": {"name": "cosine", "warmup_iterations": 2}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["4d", "per-modality-files"])
def test_own_multimodal_dataset_trains_predicts_and_evaluates(tmp_path: Path, layout: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "mydata"
    write_own_dataset(data, layout)
    config = write_config(data / "experiment.yaml", epochs=40)
    run, model, pred = tmp_path / "run", tmp_path / "model", tmp_path / "pred"

    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    split = json.loads((run / "split.json").read_text())
    sides = [part for part in ("train", "val", "test") if "patient-A" in split[part]]
    assert len(sides) == 1  # both studies of patient-A on one side
    assert main(["model-folder", str(run), "--out", str(model), "--checkpoint", "last"]) == 0
    assert main(["predict", str(data / "imagesTs"), "--model", str(model), "--out", str(pred),
                 "--no-progress"]) == 0
    report = json.loads((pred / "report.json").read_text())
    assert [case["status"] for case in report["cases"]] == ["ok", "ok"]
    assert all(case["case_id"].startswith("case_") for case in report["cases"])  # pseudonymous folders kept
    capsys.readouterr()

    status = main(["evaluate", "--pred", str(pred), "--truth", str(data / "labelsTs"),
                   "--labels", str(data / "dataset.json"), "--images", str(data / "imagesTs")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "2 case(s) evaluated" in out
    metrics = json.loads((pred / "evaluation" / "metrics.json").read_text())
    dice = metrics["summary"]["model"]
    assert set(dice) == set(LABELS[1:])
    worst = min(scores["dice"]["mean"] for scores in dice.values())
    assert worst > 0.6, {name: round(scores["dice"]["mean"], 3) for name, scores in dice.items()}
