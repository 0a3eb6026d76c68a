"""Tiny synthetic Decathlon data set and tiny configs for fast training tests (imported by the tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medseg.config import ExperimentConfig, apply_overrides, load_config

CASES = 6
SIZE = 24


def write_tiny_dataset(root: Path, cases: int = CASES, size: int = SIZE, seed: int = 0) -> Path:
    """``cases`` volumes of ``size``^3 (1.5 mm voxels) with a bright sphere labelled 1; returns dataset.json."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"))
    training = []
    for index in range(cases):
        centre = rng.uniform(size * 0.35, size * 0.65, size=3)
        radius = rng.uniform(size * 0.15, size * 0.25)
        inside = np.linalg.norm(grid - centre[:, None, None, None], axis=0) <= radius
        image = (100.0 + 60.0 * inside + rng.normal(0.0, 8.0, inside.shape)).astype(np.float32)
        name = f"case_{index:03d}"
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), root / "labelsTr" / f"{name}.nii.gz")
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    content = {
        "name": "tiny", "description": "spheres", "tensorImageSize": "3D",
        "modality": {"0": "MR"}, "labels": {"0": "background", "1": "sphere"},
        "numTraining": cases, "numTest": 0, "training": training, "test": [],
    }
    path = root / "dataset.json"
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def tiny_config_dict(dataset_json: Path, **sections: Any) -> dict[str, Any]:
    """A tiny UNet experiment as plain data (seconds per epoch on one core)."""
    data: dict[str, Any] = {
        "seed": 3,
        "data": {"dataset_json": str(dataset_json)},
        "network": {"name": "unet", "channels": [4, 8], "strides": [2], "num_res_units": 0,
                    "patch_size": [16, 16, 16], "window_size": [24, 24, 24]},
        "transforms": {"augment": {"enabled": False}},
        "sampling": {"samples_per_case": 1},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 1},
        "train": {"max_epochs": 2, "batch_size": 2, "progress": False, "cache": "memory",
                  "optimizer": {"lr": 0.01}, "schedule": {"name": "constant"}},
    }
    for key, value in sections.items():
        data = apply_overrides(data, [f"{key}={json.dumps(value)}"])
    return data


def tiny_config(dataset_json: Path, **sections: Any) -> ExperimentConfig:
    """``tiny_config_dict`` loaded; keyword ``a__b=value`` sets ``a.b`` (e.g. ``train__max_epochs=3``)."""
    overrides = {key.replace("__", "."): value for key, value in sections.items()}
    return load_config(ExperimentConfig, tiny_config_dict(dataset_json, **overrides))
