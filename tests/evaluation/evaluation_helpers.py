"""Helpers: a tiny evaluation set on disk: 3 cases of images, references, predictions and probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

CLASS_NAMES = ("background", "left", "right")
AFFINE = np.array([[-1.0, 0, 0, 20], [0, 1.5, 0, -10], [0, 0, 2.0, 5], [0, 0, 0, 1]])
SHAPE = (16, 14, 10)


@dataclass(frozen=True)
class EvaluationSet:
    """Folders of the tiny set (Decathlon-like names: images CASE_0000.nii.gz)."""

    images: Path
    truth: Path
    pred: Path  # batch layout: pred/CASE/seg.nii.gz and probabilities.nii.gz


def _truth() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:7, 3:10, 2:8] = 1
    labels[9:14, 3:10, 2:8] = 2
    return labels


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, AFFINE)
    image.set_qform(AFFINE, code=1)
    nib.save(image, path)


def write_case(root: EvaluationSet, case_id: str, shift: int, drop_right: bool = False) -> None:
    """One case: the prediction is the reference shifted ``shift`` voxels along j."""
    truth = _truth()
    prediction = np.roll(truth, shift, axis=1)
    if drop_right:
        prediction[prediction == 2] = 0
    rng = np.random.default_rng(shift)
    image = (truth * 100 + rng.normal(0, 10, SHAPE)).astype(np.float32)
    probabilities = np.full(SHAPE + (3,), 0.1, dtype=np.float32)
    for label in range(3):
        probabilities[..., label][prediction == label] = 0.8
    _save(image, root.images / f"{case_id}_0000.nii.gz")
    _save(truth, root.truth / f"{case_id}.nii.gz")
    _save(prediction, root.pred / case_id / "seg.nii.gz")
    _save(probabilities, root.pred / case_id / "probabilities.nii.gz")
