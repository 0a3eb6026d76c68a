"""Augmentation on: under every random flip, rotation, zoom and intensity change the image and its
label stay aligned (seeded), and the augmented patches really differ from plain ones.

The scan is an off-centre, tilted bright ellipsoid plus a bar on one side (no symmetry, so a flip or
rotation of the image alone, or of image and label with different random draws, misaligns them).
In each training patch the bright voxels must carry label 1 and the dark ones label 0: interpolation
(bilinear image, nearest label) may disagree only on the boundary, a few percent of the structure.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.config import ExperimentConfig, load_config
from medseg.transforms import build_transforms

SHAPE = (30, 26, 20)
PATCH = (20, 20, 16)
SEEDS = range(6)
SAMPLES = 2


def _case(tmp_path: Path) -> dict:
    """An asymmetric structure (label 1, intensity 300 on 100, a little noise) on an anisotropic LAS grid."""
    grid = np.indices(SHAPE).astype(float)
    centre = np.array([17.0, 11.0, 9.0])
    a = np.radians(30)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    local = np.einsum("ba,bijk->aijk", rot, grid - centre[:, None, None, None])
    inside = ((local / np.array([7.0, 4.0, 4.0])[:, None, None, None]) ** 2).sum(axis=0) <= 1.0
    inside[5:9, 16:22, 4:14] = True  # a bar off to one side
    rng = np.random.default_rng(0)
    image = (100.0 + 200.0 * inside + rng.normal(0.0, 3.0, SHAPE)).astype(np.float32)
    affine = np.array([[-1.2, 0, 0, 30.0], [0, 1.4, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), tmp_path / "label.nii.gz")
    return {"image": [str(tmp_path / "image.nii.gz")], "label": str(tmp_path / "label.nii.gz")}


def _config(**augment: object) -> ExperimentConfig:
    settings = {"enabled": True, "prob": 1.0, "rotate_deg": 25.0, "scale": 0.15, "flip": True, "noise_std": 0.05,
                "intensity_scale": 0.1, "intensity_shift": 0.1, "gamma": [0.7, 1.5], **augment}
    return load_config(ExperimentConfig, {
        "transforms": {"orientation": "RAS", "normalize": "zscore", "augment": settings},
        "sampling": {"name": "pos_neg", "samples_per_case": SAMPLES, "pos": 1.0, "neg": 1.0},
    })


def _patches(config: ExperimentConfig, case: dict, seed: int) -> list[dict]:
    chain = build_transforms("train", config, ["MR"], PATCH)
    chain.set_random_state(seed=seed)
    return chain(case)


def _disagreement(patch: dict) -> tuple[float, int]:
    """Share of the structure's voxels where (bright image) != (label 1) away from its boundary, and the
    label-1 voxel count.

    Away from the boundary: label 1 eroded by one voxel, and label 0 outside label 1 dilated by one voxel
    (interpolation blurs the boundary band only). Bright = above the midpoint of the patch's median image
    value on label 0 and on label 1.
    """
    image = torch.as_tensor(patch["image"]).as_subclass(torch.Tensor)[0].numpy()
    label = torch.as_tensor(patch["label"]).as_subclass(torch.Tensor)[0].numpy()
    inside = label == 1
    count = int(inside.sum())
    if count == 0 or inside.all():
        return 0.0, count
    threshold = 0.5 * (np.median(image[inside]) + np.median(image[~inside]))
    core = ndimage.binary_erosion(inside, border_value=1)
    outside = ~ndimage.binary_dilation(inside)
    wrong = (core & (image <= threshold)) | (outside & (image > threshold))
    return float(wrong.sum()) / count, count


@pytest.mark.parametrize("augment", [{}, {"rotate_deg": 0.0, "scale": 0.0}, {"flip": False}],
                         ids=["all", "flips-only", "affine-only"])
def test_image_and_label_stay_aligned_under_every_random_transform(tmp_path: Path, augment: dict) -> None:
    case = _case(tmp_path)
    config = _config(**augment)
    structures = 0
    for seed in SEEDS:
        for patch in _patches(config, case, seed):
            label = torch.as_tensor(patch["label"]).as_subclass(torch.Tensor)
            assert tuple(label.shape) == (1, *PATCH)
            assert set(np.unique(label.numpy())) <= {0.0, 1.0}  # nearest neighbour: labels stay labels
            share, count = _disagreement(patch)
            if count >= 50:
                structures += 1
                assert share < 0.01, (seed, share, count)
    assert structures >= len(SEEDS)  # the check ran on patches holding the structure


def test_augmentation_runs_and_is_seeded(tmp_path: Path) -> None:
    case = _case(tmp_path)
    plain = _patches(_config(enabled=False), case, seed=3)
    first = _patches(_config(), case, seed=3)
    again = _patches(_config(), case, seed=3)
    other = _patches(_config(), case, seed=4)
    for a, b in zip(first, again):  # same seed, same patches
        assert torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))
        assert torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
    # Augmented patches differ from plain ones and from another seed's (images and labels alike).
    for a, p in zip(first, plain):
        assert not torch.allclose(torch.as_tensor(a["image"]), torch.as_tensor(p["image"]))
    assert any(not torch.equal(torch.as_tensor(a["label"]), torch.as_tensor(o["label"])) for a, o in zip(first, other))
