"""Placement machinery for tests: structures in world millimetres, world centroids, world-space moves,
and a threshold network whose mask is an exact function of the input.

Why: Dice against a truth mask barely sees a mask one voxel off (a 2 mm shift of a brain tissue class
still scores 0.84-0.86). A centroid in world millimetres sees it directly: a one-voxel shift moves it
by the voxel size, whatever the structure's size. The checks here compare per-class centroids in mm.

* ``Ellipsoid`` / ``rasterise``: structures given in RAS mm, sampled on any grid (oblique,
  anisotropic, non-cubic); the image holds ``+100`` inside label-1 structures and ``-100`` inside
  label-2 structures (0 elsewhere), so no interpolation between background and one class ever crosses
  the other class's threshold.
* ``THRESHOLD_SPEC`` (register it with ``register_threshold_network(monkeypatch)``): a 1x1x1
  convolution with logits ``(0, g (x - 50), g (-x - 50))``. Its argmax is label 1 where the
  (resampled) intensity exceeds 50, label 2 below -50: the predicted mask is the preprocessed image's
  level set, so any misplacement comes from the geometry code, not from the network.
* ``world_centroid`` / ``centroid_errors_mm``: per-class centroids of label maps in RAS mm.
* ``moved`` / ``resampled``: a scan moved in world space (its affine translated) or resampled onto
  another grid (scipy, independent of MONAI) - the same anatomy seen through a different grid. A model
  whose mask lands on the anatomy gives the same world centroids for both (within a fraction of a
  voxel); one that misplaces masks on some grids does not. Reusable with trained models: predict the
  original and the resampled scan, compare ``world_centroid`` per class.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import ndimage
from torch import nn

from medseg.config import ExperimentConfig, NetworkConfig, apply_overrides, config_to_dict, load_config
from medseg.networks.spec import NetworkGeometry, NetworkSpec
from medseg.types import Volume

THRESHOLD = 50.0
INSIDE = {1: 100.0, 2: -100.0}
THRESHOLD_CLASSES = ("background", "bright", "dark")


@dataclass(frozen=True)
class Ellipsoid:
    """A structure in world space: centre and semi-axes in RAS mm, rotated by ``rotation`` (3x3)."""

    label: int
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def rotation(degrees: Sequence[float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees) as a (3, 3) matrix."""
    a, b, c = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def grid_affine(spacing: Sequence[float], degrees: Sequence[float], centre_mm: Sequence[float],
                shape: Sequence[int]) -> np.ndarray:
    """(4, 4) voxel -> RAS affine: rotated axes, ``spacing`` mm, the grid's middle at ``centre_mm``."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(degrees) @ np.diag(np.asarray(spacing, dtype=float))
    middle = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(centre_mm, dtype=float) - affine[:3, :3] @ middle
    return affine


def world_points(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(3, I, J, K) RAS mm of every voxel centre of a grid."""
    index = np.indices(tuple(shape), dtype=np.float64)
    return np.einsum("ab,bijk->aijk", np.asarray(affine)[:3, :3], index) + np.asarray(affine)[:3, 3, None, None, None]


def rasterise(structures: Sequence[Ellipsoid], affine: np.ndarray, shape: Sequence[int]) -> tuple[Volume, np.ndarray]:
    """Sample structures on a grid: a one-channel ``Volume`` (float32, ``INSIDE[label]`` inside) and labels (uint8)."""
    points = world_points(affine, shape)
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    for item in structures:
        local = np.einsum("ba,bijk->aijk", np.asarray(item.rotation, dtype=float),
                          points - np.asarray(item.centre_mm, dtype=float)[:, None, None, None])
        inside = (((local / np.asarray(item.radii_mm, dtype=float)[:, None, None, None]) ** 2).sum(axis=0)) <= 1.0
        labels[inside] = item.label
    image = np.zeros(tuple(shape), dtype=np.float32)
    for label, value in INSIDE.items():
        image[labels == label] = value
    return Volume(image[None], np.asarray(affine, dtype=np.float64), ("MR",)), labels


def world_centroid(labels: np.ndarray, affine: np.ndarray, value: int) -> np.ndarray:
    """(3,) RAS mm centroid of the voxels labelled ``value`` (NaN when there are none)."""
    index = np.argwhere(np.asarray(labels) == value).astype(np.float64)
    if index.size == 0:
        return np.full(3, np.nan)
    return np.asarray(affine)[:3, :3] @ index.mean(axis=0) + np.asarray(affine)[:3, 3]


def centroid_errors_mm(labels: np.ndarray, labels_affine: np.ndarray, truth: np.ndarray, truth_affine: np.ndarray,
                       values: Sequence[int]) -> dict[int, float]:
    """Distance in mm between the world centroids of ``labels`` and ``truth``, per label value."""
    return {int(v): float(np.linalg.norm(world_centroid(labels, labels_affine, v)
                                         - world_centroid(truth, truth_affine, v))) for v in values}


def moved(volume: Volume, offset_mm: Sequence[float]) -> Volume:
    """The same voxels placed ``offset_mm`` (RAS) further in world space (the affine translated)."""
    affine = np.array(volume.affine, dtype=np.float64, copy=True)
    affine[:3, 3] += np.asarray(offset_mm, dtype=float)
    return Volume(volume.array, affine, volume.channel_names, volume.source)


def resampled(volume: Volume, affine: np.ndarray, shape: Sequence[int], order: int = 1) -> Volume:
    """``volume`` resampled onto another grid with scipy (linear by default, 0 outside): same anatomy, new voxels."""
    source_from_target = np.linalg.inv(np.asarray(volume.affine, dtype=float)) @ np.asarray(affine, dtype=float)
    channels = [ndimage.affine_transform(np.asarray(c, dtype=np.float64), source_from_target[:3, :3],
                                         offset=source_from_target[:3, 3], output_shape=tuple(shape), order=order,
                                         mode="constant", cval=0.0) for c in volume.array]
    return Volume(np.stack(channels).astype(np.float32), np.asarray(affine, dtype=np.float64), volume.channel_names)


class ThresholdNetwork(nn.Module):
    """Logits ``(0, g (x - 50), g (-x - 50))`` per voxel of a one-channel input (B, 1, I, J, K) -> (B, C, I, J, K).

    ``classes=2`` keeps the first two: label 1 above 50, background below. ``gain`` sets how sure it is.
    """

    def __init__(self, gain: float = 0.05, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, classes, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, gain, -gain])[:classes].reshape(classes, 1, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -gain * THRESHOLD, -gain * THRESHOLD])[:classes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _threshold_geometry(config: NetworkConfig) -> NetworkGeometry:
    return NetworkGeometry((16, 16, 16), (16, 16, 16), 0, 1)


THRESHOLD_SPEC = NetworkSpec(
    name="threshold", description="test only: per-voxel thresholds of the input (exact masks)",
    builder=lambda config: ThresholdNetwork(classes=config.out_channels), geometry=_threshold_geometry,
    check_patch=lambda config, size: None,
)


def register_threshold_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add ``THRESHOLD_SPEC`` to the network registry for the duration of one test."""
    from medseg.networks import registry

    monkeypatch.setitem(registry._SPECS, THRESHOLD_SPEC.name, THRESHOLD_SPEC)


def threshold_config(
    spacing: Sequence[float] = (2.0, 2.0, 2.0), window: int = 16, **overrides: object
) -> ExperimentConfig:
    """An experiment of the threshold network: RAS, resampled to ``spacing``, no intensity normalisation;
    keyword ``a__b=value`` sets ``a.b`` (e.g. ``network__out_channels=2``)."""
    data = {
        "network": {"name": "threshold", "in_channels": 1, "out_channels": 3, "window_size": [window] * 3,
                    "patch_size": [window] * 3},
        "transforms": {"orientation": "RAS", "spacing": list(spacing), "normalize": "none",
                       "augment": {"enabled": True, "flip": True}},  # mirror-invariant: TTA may mirror every axis
        "train": {"sw_overlap": 0.25},
    }
    data = apply_overrides(data, [f"{key.replace('__', '.')}={json.dumps(value)}" for key, value in overrides.items()])
    return load_config(ExperimentConfig, data)


def write_threshold_model(folder: Path, config: ExperimentConfig | None = None, gain: float = 0.05) -> Path:
    """A model folder (model.yaml, weights.pt, model_card.json) of the threshold network.

    The config's ``network.out_channels`` (2 or 3) sets the classes; ``gain`` the logits' slope per intensity unit.
    """
    from medseg.inference.model_card import ModelCard, default_colors, write_card_text

    config = config or threshold_config()
    classes = config.network.out_channels
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    torch.save(ThresholdNetwork(gain, classes).state_dict(), folder / "weights.pt")
    card = ModelCard(name=folder.name, class_names=THRESHOLD_CLASSES[:classes], colors=default_colors(classes),
                     modalities=("MR",), network="threshold")
    (folder / "model_card.json").write_text(write_card_text(card), encoding="utf-8")
    return folder


# --- the shared test scene -------------------------------------------------------------------------
MODEL_VOXEL_MM = 2.0  # threshold_config()'s spacing
# Measured centroid errors of the threshold model are 0.02-0.08 mm: a tenth of a model voxel is the bar,
# so a quarter-voxel (0.5 mm) misplacement fails it.
TOLERANCE_MM = 0.1 * MODEL_VOXEL_MM
# A tilted bright ellipsoid (label 1) and a dark one (label 2), off the grid's centre: any flip,
# transpose or shift of the mask moves at least one centroid by millimetres.
STRUCTURES = (
    Ellipsoid(1, (9.6, -6.4, 14.4), (11.2, 8.0, 6.4), tuple(map(tuple, rotation((20.0, 0.0, 35.0))))),
    Ellipsoid(2, (-14.4, 11.2, -9.6), (6.4, 9.6, 8.0)),
)
# (spacing mm, rotation degrees, shape): oblique and anisotropic, finer and coarser than the model's 2 mm.
GRIDS = {
    "fine-oblique": ((0.9, 1.3, 2.6), (14.0, -9.0, 23.0), (56, 40, 22)),
    "axes-swapped": ((1.1, 0.7, 1.9), (90.0, 8.0, 180.0), (46, 70, 27)),
    "coarse": ((2.7, 2.3, 3.1), (-6.0, 11.0, 4.0), (20, 24, 18)),
}
CENTRE_MM = (1.0, 2.0, -3.0)


def scene(name: str) -> tuple[Volume, np.ndarray]:
    """``STRUCTURES`` on the grid ``GRIDS[name]``: the scan (one channel "MR") and its true labels."""
    spacing, degrees, shape = GRIDS[name]
    return rasterise(STRUCTURES, grid_affine(spacing, degrees, CENTRE_MM, shape), shape)
