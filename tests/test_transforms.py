"""Transform chains: loading through medseg.io keeps the affine; samplers draw the asked centre ratios."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.config import ExperimentConfig, load_config
from medseg.errors import ConfigError
from medseg.transforms import build_sampler, build_transforms


def _case(tmp_path: Path) -> dict:
    affine = np.array([[-2.0, 0, 0, 30], [0, 2.0, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    image = np.arange(20 * 18 * 10, dtype=np.float32).reshape(20, 18, 10)
    label = np.zeros((20, 18, 10), dtype=np.uint8)
    label[8:12, 8:12, 4:6] = 1
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "label.nii.gz")
    return {"image": [str(tmp_path / "image.nii.gz")], "label": str(tmp_path / "label.nii.gz")}


def test_val_chain_loads_with_the_io_affine_and_turns_to_ras(tmp_path: Path) -> None:
    config = load_config(ExperimentConfig, {"transforms": {"normalize": "none"}})
    item = build_transforms("val", config, ["MR"])(_case(tmp_path))
    image, label = item["image"], item["label"]
    assert tuple(image.shape) == (1, 20, 18, 10) and tuple(label.shape) == (1, 20, 18, 10)
    # The i axis pointed left (-2 mm): RAS flips it, and the affine follows.
    assert np.allclose(image.affine.numpy()[:3, :3], np.diag([2.0, 2.0, 3.0]))
    assert float(image[0, 0, 0, 0]) == float(np.arange(20 * 18 * 10).reshape(20, 18, 10)[19, 0, 0])
    assert int(label.sum()) == 32


def test_deepmedic_sampler_centres_half_on_foreground() -> None:
    config = load_config(ExperimentConfig, {"sampling": {"name": "deepmedic", "samples_per_case": 400}})
    label = torch.zeros(1, 30, 30, 30)
    label[0, 10:20, 10:20, 10:20] = 1  # 3.7 % foreground
    image = torch.rand(1, 30, 30, 30)
    sampler = build_sampler(config, (9, 9, 9))
    sampler.set_random_state(seed=0)
    patches = sampler({"image": image, "label": label})
    centres = np.array([float(p["label"][0, 4, 4, 4]) for p in patches])
    assert len(patches) == 400 and 0.42 <= centres.mean() <= 0.58


def test_class_ratio_sampler_checks_the_ratio_count() -> None:
    config = load_config(ExperimentConfig, {"sampling": {"name": "class_ratios", "class_ratios": [1, 1, 1]}})
    with pytest.raises(ConfigError, match="sampling.class_ratios: 3 ratios for 2 classes"):
        build_sampler(config, (8, 8, 8))
