"""Content QC: stray foreground, classes the input does not separate, TTA passes that disagree."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from medseg.inference.qc import build_reference, qc_flags, scan_facts
from medseg.inference.qc_content import minimum_class_separation, outside_main_structure_ml, pass_disagreement
from medseg.types import Volume

NAMES = ("background", "CSF", "gray matter", "white matter")


def _brain(contrast: tuple[float, float, float] = (20.0, 60.0, 100.0), noise: float = 5.0) -> tuple[Volume, np.ndarray]:
    """A (20, 20, 20) 'brain': nested boxes of the three classes at 2 mm, plus its labels."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[3:17, 3:17, 3:17] = 1
    labels[5:15, 5:15, 5:15] = 2
    labels[8:12, 8:12, 8:12] = 3
    rng = np.random.default_rng(0)
    image = np.zeros(labels.shape, np.float32)
    for value, mean in enumerate(contrast, start=1):
        image[labels == value] = mean
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    return Volume(image[None], np.diag([2.0, 2.0, 2.0, 1.0]), ("T1",)), labels


def _reference(**changes):
    volume, labels = _brain()
    volumes = {name: float((labels == i).sum() * 8 / 1000) for i, name in enumerate(NAMES) if i}
    reference = build_reference([scan_facts(volume)], [volumes], NAMES, intensity_ranges=False)
    return dataclasses.replace(reference, **changes)


def test_stray_foreground_is_measured_in_ml() -> None:
    _, labels = _brain()
    assert outside_main_structure_ml(labels, (2.0, 2.0, 2.0)) == 0.0
    labels[0:2, 0:2, 0:5] = 2  # 20 voxels of 8 uL, not touching the brain (26-connectivity)
    assert outside_main_structure_ml(labels, (2.0, 2.0, 2.0)) == pytest.approx(20 * 8 / 1000)
    assert outside_main_structure_ml(np.zeros((4, 4, 4)), (1, 1, 1)) == 0.0


def test_class_separation_is_the_weakest_pair() -> None:
    volume, labels = _brain((20.0, 60.0, 100.0), noise=5.0)
    separation, pair = minimum_class_separation(volume.array[0], labels, NAMES)
    assert separation == pytest.approx(40.0 / 5.0, rel=0.1) and pair  # every pair is 40 apart, noise 5
    volume, labels = _brain((20.0, 60.0, 63.0), noise=5.0)
    separation, pair = minimum_class_separation(volume.array[0], labels, NAMES)
    assert separation == pytest.approx(3.0 / 5.0, abs=0.15) and pair == "gray matter vs white matter"
    assert math.isnan(minimum_class_separation(volume.array[0], np.zeros_like(labels), NAMES)[0])


def test_pass_disagreement_counts_changed_foreground() -> None:
    final = torch.zeros((10, 10, 10), dtype=torch.uint8)
    final[:5] = 1  # 500 foreground voxels
    moved = final.clone()
    moved[:5, :, 0] = 2  # 50 of them change class in one pass
    assert pass_disagreement([final, moved], final) == pytest.approx(50 / 500)
    assert math.isnan(pass_disagreement([final], final))
    stray = final.clone()
    stray[9, 9, :] = 3  # 10 voxels one pass labels on the "scalp", away from the structure the clean-up keeps
    kept = (final > 0).numpy()
    assert pass_disagreement([final, moved, stray], final, kept) == pytest.approx(50 / 500)  # the stray ones never count
    kept[:, :, 0] = False  # the structure kept is smaller: only its own voxels count
    assert pass_disagreement([final, moved], final, kept) == pytest.approx(0.0)


def test_flags_name_what_is_wrong_and_stay_quiet_otherwise() -> None:
    reference = _reference(single_structure=True, min_class_separation=0.75, tta_disagreement_limit=0.15)
    volume, labels = _brain()
    volumes = {name: float((labels == i).sum() * 8 / 1000) for i, name in enumerate(NAMES) if i}
    assert qc_flags(reference, volume, volumes, 0.1, labels=labels, tta_disagreement=0.02) == ()

    stray = labels.copy()
    stray[0:2, 0:2, 0:12] = 1  # 48 voxels = 0.384 mL, two voxels away from the brain
    flags = qc_flags(dataclasses.replace(reference, outside_ml_limit=0.3), volume, volumes, 0.1, labels=stray)
    assert flags == ("tissue outside the main structure: 0.4 mL of predicted foreground lies outside the "
                     "largest connected structure (limit 0.3 mL)",)
    assert qc_flags(dataclasses.replace(reference, outside_ml_limit=0.4), volume, volumes, 0.1, labels=stray) == ()

    flat, _ = _brain((20.0, 60.0, 62.0))
    flags = qc_flags(reference, flat, volumes, 0.1, labels=labels)
    assert len(flags) == 1 and flags[0].startswith("low class contrast: gray matter vs white matter d'=0.")

    flags = qc_flags(reference, volume, volumes, 0.1, labels=labels, tta_disagreement=0.2)
    assert flags == ("passes disagree: 20.0 % of the predicted voxels change class between mirrored passes "
                     "(limit 15 %)",)


def test_mr_references_keep_no_intensity_ranges() -> None:
    """MR is in arbitrary units: a scan 10x brighter than training is not a finding."""
    reference = _reference()
    assert reference.intensity == {}
    volume, labels = _brain()
    bright = Volume(volume.array * 10.0, volume.affine, volume.channel_names)
    volumes = {name: float((labels == i).sum() * 8 / 1000) for i, name in enumerate(NAMES) if i}
    assert qc_flags(reference, bright, volumes, 0.1, labels=labels) == ()
