"""Tiny model folders for Predictor tests: a small UNet briefly overfitted to find bright spheres.

The network (2 -> 4 channels, one down-sampling) is trained for a few dozen Adam steps on
24^3 volumes holding a bright sphere (label 1), so its output is a meaningful mask and not
noise: enough to test geometry, TTA, temperature and clean-up in a second or two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml

from medseg.config import ExperimentConfig, apply_overrides, config_to_dict, load_config
from medseg.inference.model_card import ModelCard, PostprocessSettings, default_colors, write_card_text
from medseg.inference.qc import QCReference
from medseg.networks import build_network
from medseg.types import Volume

SIZE = 24
CLASS_NAMES = ("background", "sphere")
MODALITIES = ("MR",)


def tiny_config(**overrides: Any) -> ExperimentConfig:
    """A tiny UNet experiment; keyword ``a__b=value`` sets ``a.b``."""
    data: dict[str, Any] = {
        "seed": 0,
        "network": {"name": "unet", "in_channels": 1, "out_channels": 2, "channels": [2, 4], "strides": [2],
                    "num_res_units": 0, "norm": "instance", "patch_size": [16, 16, 16], "window_size": [16, 16, 16]},
        "transforms": {"orientation": "RAS", "normalize": "zscore",
                       "augment": {"enabled": True, "flip": True}},  # trained with mirror flips: TTA may mirror
        "train": {"sw_overlap": 0.25},
    }
    data = apply_overrides(data, [f"{key.replace('__', '.')}={json.dumps(value)}" for key, value in overrides.items()])
    return load_config(ExperimentConfig, data)


def sphere_image(size: int = SIZE, centre: tuple[float, ...] | None = None, radius: float = 6.0,
                 seed: int = 0, noise: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """A bright sphere on a grey background: image (I, J, K) float32 and mask (I, J, K) bool."""
    centre = centre if centre is not None else ((size - 1) / 2.0,) * 3
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij")).astype(np.float64)
    inside = np.linalg.norm(grid - np.asarray(centre)[:, None, None, None], axis=0) <= radius
    rng = np.random.default_rng(seed)
    image = 100.0 + 80.0 * inside + rng.normal(0.0, noise, inside.shape)
    return image.astype(np.float32), inside


def trained_state(steps: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of the tiny UNet after ``steps`` Adam steps on random sphere volumes."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build_network(tiny_config().network)
    optimiser = torch.optim.Adam(network.parameters(), lr=0.05)
    loss_function = torch.nn.CrossEntropyLoss()
    network.train()
    with torch.enable_grad():
        for step in range(steps):
            centre = tuple(rng.uniform(8, 15, size=3))
            image, mask = sphere_image(16, centre, radius=rng.uniform(3, 5), seed=step)
            image = (image - image.mean()) / image.std()
            logits = network(torch.from_numpy(image)[None, None])
            loss = loss_function(logits, torch.from_numpy(mask.astype(np.int64))[None])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def reference(**changes: Any) -> QCReference:
    """QC ranges around the sphere volumes (1.5 mm voxels, 24^3 scans)."""
    values: dict[str, Any] = {
        "cases": 4, "class_volume_ml": {"sphere": (0.5, 5.0)},
        "intensity": {"MR": {"p1": (60.0, 120.0), "p99": (150.0, 220.0)}},
        "spacing_mm": ((0.75, 3.0),) * 3, "extent_mm": ((20.0, 60.0),) * 3, "shape": ((24, 24),) * 3,
    }
    values.update(changes)
    return QCReference(**values)


def write_model_folder(
    folder: Path, state: dict[str, torch.Tensor], config: ExperimentConfig | None = None, *,
    qc: QCReference | None = None, largest_component: bool = False,
) -> Path:
    """model.yaml + weights.pt + model_card.json for ``state``."""
    config = config or tiny_config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    torch.save(state, folder / "weights.pt")
    card = ModelCard(
        name=folder.name, class_names=CLASS_NAMES, colors=default_colors(2), modalities=MODALITIES, network="unet",
        postprocess=PostprocessSettings(largest_component=largest_component), qc=qc,
    )
    (folder / "model_card.json").write_text(write_card_text(card), encoding="utf-8")
    return folder


def sphere_volume(affine: np.ndarray, size: int = SIZE, centre: tuple[float, ...] | None = None,
                  radius: float = 6.0, seed: int = 0) -> Volume:
    """A one-channel sphere Volume on ``affine``."""
    image, _ = sphere_image(size, centre, radius, seed)
    return Volume(image[None], np.asarray(affine, dtype=np.float64), MODALITIES)


def save_nifti(volume: Volume, path: Path) -> Path:
    """Write the volume's first channel with its affine (qform and sform) via nibabel."""
    image = nib.Nifti1Image(volume.array[0], volume.affine)
    image.set_qform(volume.affine, code=1)
    image.set_sform(volume.affine, code=1)
    nib.save(image, path)
    return path


def oblique_affine(spacing: float = 1.5, degrees: float = 20.0) -> np.ndarray:
    """A rotation about two axes with isotropic ``spacing`` and an offset."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx * spacing
    affine[:3, 3] = (-10.0, 5.0, 20.0)
    return affine


def mirror_symmetric_state(config: ExperimentConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights whose 3D kernels are symmetric under flips along each axis.

    With stride-1 levels (``strides: [1]``) such a network commutes with flips (zero padding,
    instance norm and activations are flip-invariant), so mirror TTA must give back the plain
    prediction for any input.
    """
    torch.manual_seed(seed)
    state = build_network(config.network).state_dict()
    symmetric = {}
    for key, value in state.items():
        if value.ndim == 5:
            flips = [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]
            value = sum(torch.flip(value, f) if f else value for f in flips) / len(flips)
        symmetric[key] = value.clone()
    return symmetric


def write_sphere_dataset(root: Path, cases: int = 5, size: int = SIZE) -> Path:
    """A Decathlon data set of sphere scans (1.5 mm voxels) with labels; returns dataset.json."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    training = []
    for index in range(cases):
        image, mask = sphere_image(size, tuple(rng.uniform(9, 14, size=3)), rng.uniform(4, 6), seed=index)
        name = f"sphere_{index:03d}"
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / "labelsTr" / f"{name}.nii.gz")
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    content = {"name": "spheres", "description": "bright spheres", "modality": {"0": "MR"},
               "labels": {"0": "background", "1": "sphere"}, "training": training, "test": []}
    path = root / "dataset.json"
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def train_tiny_run(dataset_json: Path, run_dir: Path, epochs: int = 1) -> Path:
    """A real run folder from ``medseg.training.loop.train`` (tiny UNet, ``epochs`` epochs)."""
    from medseg.training.loop import train

    config = tiny_config(
        data__dataset_json=str(dataset_json), train__max_epochs=epochs, train__progress=False,
        train__cache="none", train__batch_size=2, train__device="cpu",
        split__val_fraction=0.2, split__test_fraction=0.2, sampling__samples_per_case=1,
    )
    train(config, run_dir)
    return run_dir
