"""Definitions of the tiny sample data sets used in tests/data, and small helpers.

(A plain module, not conftest.py: ``from conftest import ...`` is ambiguous with several conftest files.)
"""

from __future__ import annotations

from pathlib import Path

import nibabel.orientations
import numpy as np
import yaml

TINY_BRAIN = {
    "kind": "brain-tissue",
    "name": "brain-tiny",
    "description": "tiny brain sample for tests",
    "seed": 7,
    "n_train": 2,
    "n_test": 1,
    "template_downsample": 3,
    "margin_mm": 6.0,
    "dicom_cases": [0],
    "augment": {
        "spacings": [[3.0, 3.0, 3.0], [2.5, 2.5, 4.0]],
        "orientations": ["RAS", "LPS", "LIA"],
    },
}
TINY_CT = {
    "kind": "ct-phantom",
    "name": "ct-tiny",
    "description": "tiny CT phantom for tests",
    "seed": 11,
    "n_train": 2,
    "n_test": 1,
    "shape": [64, 56, 24],
    "spacing": [1.2, 1.2, 2.5],
    "dicom_cases": [0],
}


def write_definition(folder: Path, content: dict, name: str = "definition.yaml") -> Path:
    """Write a definition YAML into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same (I, J, K) voxels in RAS axis order and the matching affine (no resampling)."""
    ornt = nibabel.orientations.io_orientation(affine)
    flipped = nibabel.orientations.apply_orientation(array, ornt)
    return flipped, affine @ nibabel.orientations.inv_ornt_aff(ornt, array.shape)
