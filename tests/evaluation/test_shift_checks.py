"""The metric and geometry helpers of medseg.evaluation.shift_checks, on tiny arrays with exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.evaluation.shift_checks import (
    away_from_boundaries,
    boundary_distance,
    brain_dice,
    class_dice,
    confidence_metrics,
    isotropic_grid,
    move,
    oblique_grid,
    far_outside_mask_ml,
    outside_mask_ml,
    resample_labels,
    rigid_world,
    rotation_matrix,
    surface_metrics,
    thick_slices,
    write_outputs,
)


def test_class_dice_and_brain_dice() -> None:
    prediction = np.array([1, 1, 2, 0]).reshape(1, 1, 4)
    reference = np.array([1, 2, 2, 0]).reshape(1, 1, 4)
    scores = class_dice(prediction, reference)
    assert scores["CSF"] == pytest.approx(2 / 3) and scores["GM"] == pytest.approx(2 / 3)
    assert math.isnan(scores["WM"])  # absent from both: not counted in the mean
    assert scores["mean"] == pytest.approx(2 / 3)
    assert brain_dice(prediction, reference > 0) == 1.0
    assert brain_dice(np.array([0, 3, 3, 3]).reshape(1, 1, 4), reference > 0) == pytest.approx(2 * 2 / 6)


def test_outside_mask_ml_counts_tissue_outside_the_mask_in_ml() -> None:
    prediction = np.zeros((2, 2, 2), np.uint8)
    prediction[0] = [[1, 2], [3, 0]]  # three tissue voxels in the first plane
    prediction[1, 0, 0] = 2
    mask = np.zeros((2, 2, 2), bool)
    mask[1] = True  # only the second plane is brain
    assert outside_mask_ml(prediction, mask, (1.0, 2.0, 3.0)) == pytest.approx(3 * 6 / 1000)
    assert outside_mask_ml(prediction, np.ones_like(mask), (1.0, 2.0, 3.0)) == 0.0


def test_far_outside_counts_only_tissue_beyond_the_margin_in_mm_on_an_anisotropic_grid() -> None:
    mask = np.zeros((1, 1, 12), bool)
    mask[0, 0, :3] = True  # brain: k = 0..2; spacing 2 mm along k, so voxel k is 2 * (k - 2) mm from it
    prediction = np.zeros_like(mask, dtype=np.uint8)
    prediction[0, 0, [1, 3, 4, 5, 6, 9]] = [2, 1, 2, 3, 1, 2]  # in the brain, then 2, 4, 6, 8, 14 mm from it
    spacing = (1.0, 1.0, 2.0)
    assert outside_mask_ml(prediction, mask, spacing) == pytest.approx(5 * 2 / 1000)
    assert far_outside_mask_ml(prediction, mask, spacing) == pytest.approx(3 * 2 / 1000)  # 6, 8, 14 mm
    assert far_outside_mask_ml(prediction, mask, spacing, margin_mm=8.0) == pytest.approx(2 / 1000)
    assert far_outside_mask_ml(prediction, np.zeros_like(mask), spacing) == pytest.approx(6 * 2 / 1000)
    assert far_outside_mask_ml(prediction, np.ones_like(mask), spacing) == 0.0


def test_surface_metrics_measure_a_known_shift_in_mm() -> None:
    reference = np.zeros((40, 30, 30), np.uint8)
    reference[5:35, 5:25, 5:25] = 1
    reference[10:30, 8:22, 8:22] = 2
    reference[15:25, 11:19, 11:19] = 3
    shifted = np.roll(reference, 1, axis=0)  # one voxel = 2 mm along i
    result = surface_metrics(shifted, reference, (2.0, 1.0, 1.0))
    assert result["hd95_mm"]["mean"] == pytest.approx(2.0)
    assert result["surface_dice"]["mean"] == pytest.approx(1.0)  # every surface point within the 2 mm tolerance
    farther = surface_metrics(np.roll(reference, 2, axis=0), reference, (2.0, 1.0, 1.0))
    assert farther["hd95_mm"]["GM"] == pytest.approx(4.0)
    assert 0.0 < farther["surface_dice"]["GM"] < 1.0
    # A whole-head crop (tissue far from everything) gives the same answer as the tight array.
    padded = np.pad(reference, 20), np.pad(shifted, 20)
    assert surface_metrics(padded[1], padded[0], (2.0, 1.0, 1.0))["hd95_mm"] == result["hd95_mm"]


def test_boundary_distance_is_half_a_voxel_less_than_the_nearest_other_class() -> None:
    reference = np.array([0, 1, 1, 1, 1, 1, 1, 2, 2, 2], np.uint8).reshape(1, 1, 10)
    distance = boundary_distance(reference)[0, 0]
    assert math.isnan(distance[0])  # background is not scored
    np.testing.assert_allclose(distance[1:], [0.5, 1.5, 2.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5])  # array edge: no boundary
    away = away_from_boundaries(reference, 2.0)[0, 0]
    assert away.tolist() == [False, False, False, True, True, False, False, False, False, True]


def test_away_from_boundaries_keeps_the_core_of_a_cube() -> None:
    reference = np.zeros((9, 9, 9), np.uint8)
    reference[1:8, 1:8, 1:8] = 3  # a 7-voxel cube: two voxel layers from each face are near the boundary
    away = away_from_boundaries(reference, 2.0)
    assert away.sum() == 27 and away[3:6, 3:6, 3:6].all()
    assert boundary_distance(reference)[4, 4, 4] == pytest.approx(3.5)


def test_confidence_metrics_on_a_constructed_case() -> None:
    reference = np.ones((1, 1, 4), np.uint8)  # one class everywhere: every voxel is away from boundaries
    prediction = np.array([1, 1, 2, 1], np.uint8).reshape(1, 1, 4)
    probabilities = np.array([
        [0.0, 0.9, 0.1, 0.0],  # confidence 0.9, right
        [0.0, 0.6, 0.4, 0.0],  # 0.6, right
        [0.0, 0.3, 0.7, 0.0],  # 0.7, wrong
        [0.0, 0.8, 0.2, 0.0],  # 0.8, right
    ], np.float32).T.reshape(4, 1, 1, 4)
    uncertainty = np.array([0.1, 0.4, 0.3, 0.2], np.float32).reshape(1, 1, 4)
    result = confidence_metrics(probabilities, uncertainty, prediction, reference)
    # The one error (0.3) is more uncertain than two of the three right voxels (0.1, 0.2), not than 0.4.
    assert result["auroc_all"] == pytest.approx(2 / 3) and result["auroc_away"] == pytest.approx(2 / 3)
    # Every confidence in its own bin: ECE = mean |correct - confidence|.
    assert result["ece_all"] == pytest.approx((0.1 + 0.4 + 0.7 + 0.2) / 4)
    assert result["error_rate_all"] == 0.25 and result["away_fraction"] == 1.0


def test_move_shifts_content_in_world_coordinates() -> None:
    reference = np.zeros((6, 5, 5), np.uint8)
    reference[2, 2, 2] = 1
    image = reference.astype(np.float32) * 10
    affine = np.diag([2.0, 1.0, 1.0, 1.0])  # 2 mm along i: a 2 mm shift in R is one voxel
    moved_image, moved_reference, moved_mask = move(image, reference, reference > 0, affine, (0, 0, 0), (2, 0, 0))
    assert np.argwhere(moved_reference).tolist() == [[3, 2, 2]]
    assert moved_image[3, 2, 2] == pytest.approx(10.0) and moved_mask[3, 2, 2]


def test_thick_slices_resample_along_the_axis_nearest_s() -> None:
    reference = np.tile(np.arange(10, dtype=np.uint8), (2, 3, 1))  # (2, 3, 10): value = index along k
    affine = np.eye(4)
    image, thick_reference, mask, new_affine = thick_slices(
        reference.astype(np.float32), reference, reference > 0, affine, 5.0)
    assert image.shape == (2, 3, 2) and thick_reference.shape == (2, 3, 2)
    np.testing.assert_allclose(new_affine[:3, 2], [0, 0, 5])
    assert new_affine[2, 3] == pytest.approx(2.0)  # slice centres at old k = 2 and 7
    assert thick_reference[0, 0].tolist() == [2, 7] and mask[0, 0].tolist() == [True, True]


def _nested_spheres(shape: tuple[int, int, int], affine: np.ndarray, centre: np.ndarray,
                    world: np.ndarray | None = None) -> np.ndarray:
    """Labels 1-3 of nested spheres (shells 1.5 and 2.5 mm thick) at each voxel, the content moved by ``world``."""
    index = np.indices(shape).reshape(3, -1).astype(np.float64)
    points = affine[:3, :3] @ index + affine[:3, 3:4]
    if world is not None:
        inverse = np.linalg.inv(world)
        points = inverse[:3, :3] @ points + inverse[:3, 3:4]
    radius = np.linalg.norm(points - centre[:, None], axis=0).reshape(shape)
    labels = np.zeros(shape, np.uint8)
    labels[radius < 11.0] = 1
    labels[radius < 9.5] = 2
    labels[radius < 7.0] = 3
    return labels


def test_moved_reference_is_label_wise_linear_and_closer_to_the_truth_than_nearest() -> None:
    # On a 1.5 mm grid, labels moved by nearest neighbour jitter their boundaries by up to 0.75 mm; label-wise
    # linear resampling keeps thin shells where the moved analytic shapes put them.
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    shape = (20, 20, 20)
    centre = np.array([14.3, 14.1, 13.8])
    labels = _nested_spheres(shape, affine, centre)
    degrees, shift = (11.0, -8.0, 14.0), (0.75, -0.6, 0.5)
    truth = _nested_spheres(shape, affine, centre, rigid_world(degrees, shift, centre))
    image = labels.astype(np.float32)
    _, moved, moved_mask = move(image, labels, labels > 0, affine, degrees, shift)
    _, nearest, _ = move(image, labels, labels > 0, affine, degrees, shift, nearest_reference=True)
    linear_dice, nearest_dice = class_dice(moved, truth)["mean"], class_dice(nearest, truth)["mean"]
    assert linear_dice > 0.88 and linear_dice > nearest_dice + 0.04  # measured 0.898 vs 0.840
    assert brain_dice(moved_mask, truth > 0) > 0.96  # measured 0.968


def test_resample_labels_equals_simpleitk_label_linear() -> None:
    # SimpleITK's label interpolator (sitkLabelLinear) as the oracle, on the same geometry: blobs of 4 labels on a
    # 1.5 mm grid, rotated 11/-8/14 degrees about a point and shifted by a fraction of a voxel.
    import SimpleITK as sitk
    from scipy import ndimage

    noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((30, 28, 26)), 2.0)
    labels = np.digitize(noise, np.quantile(noise, [0.3, 0.55, 0.8])).astype(np.uint8)
    # Labels 2 voxels clear of the array's edge, as a brain inside its scan: at the edge the two differ by
    # convention (ITK clamps to the edge voxels, resample_labels counts outside as background).
    inside = np.zeros(labels.shape, bool)
    inside[2:-2, 2:-2, 2:-2] = True
    labels[~inside] = 0
    spacing = 1.5
    affine = np.diag([spacing] * 3 + [1.0])
    world = rigid_world((11.0, -8.0, 14.0), (0.75, -0.6, 0.5), np.array([20.0, 19.0, 18.0]))
    ours = resample_labels(labels, affine, affine, labels.shape, world=world)
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    image.SetSpacing((spacing,) * 3)
    inverse = np.linalg.inv(world)  # SimpleITK maps output points to input points
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(inverse[:3, :3].ravel().tolist())
    transform.SetTranslation(inverse[:3, 3].tolist())
    theirs = sitk.GetArrayFromImage(sitk.Resample(image, image, transform, sitk.sitkLabelLinear, 0)).transpose(2, 1, 0)
    np.testing.assert_array_equal(ours, theirs)  # measured: all 21,840 voxels; nearest neighbour agrees on 95 %


def test_resample_labels_background_outside_ties_and_nearest() -> None:
    labels = np.ones((4, 1, 1), np.uint8)
    labels[2:] = 2
    affine = np.eye(4)
    shifted = resample_labels(labels, affine, affine, (4, 1, 1), world=rigid_world((0, 0, 0), (1.5, 0, 0), np.zeros(3)))
    # Content moved 1.5 voxels along i: voxel 0 comes from outside (background), voxel 3 from halfway between
    # labels 1 and 2 (a tie: the smaller label), voxel 1 from between outside and label 1 (a tie: background).
    assert shifted[:, 0, 0].tolist() == [0, 0, 1, 1]
    nearest = resample_labels(labels, affine, affine, (4, 1, 1), nearest=True)
    assert nearest[:, 0, 0].tolist() == [1, 1, 2, 2]
    with pytest.raises(ValueError, match="slice profile"):
        resample_labels(labels, affine, affine, (4, 1, 1), nearest=True, profile=(0, 1.0))


def test_thick_slice_reference_is_the_label_that_fills_the_slice() -> None:
    # A 1 mm layer of label 1 at the centre of each 5 mm slice, label 3 around it: the thick voxel is mostly 3.
    reference = np.full((2, 2, 10), 3, np.uint8)
    reference[..., [2, 7]] = 1
    image = reference.astype(np.float32)
    _, thick, mask, _ = thick_slices(image, reference, reference > 0, np.eye(4), 5.0)
    assert thick[0, 0].tolist() == [3, 3] and mask.all()
    _, nearest, _, _ = thick_slices(image, reference, reference > 0, np.eye(4), 5.0, nearest_reference=True)
    assert nearest[0, 0].tolist() == [1, 1]


def test_oblique_grid_without_rotation_is_the_mask_box_plus_margin() -> None:
    mask = np.zeros((10, 10, 10), bool)
    mask[2:6, 3:5, 4:9] = True
    new_affine, shape = oblique_grid(np.eye(4), mask, degrees=0.0, margin_mm=1.0)
    assert shape == (6, 4, 7)
    np.testing.assert_allclose(new_affine, [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], atol=1e-12)
    rotated, _ = oblique_grid(np.eye(4), mask, degrees=17.0)
    assert np.degrees(np.arccos(rotated[1, 1])) == pytest.approx(17.0)


def test_isotropic_grid_keeps_the_field_of_view_and_the_axes() -> None:
    """A 1.5 x 2 x 3 mm oblique grid at 1 mm: same outer corners, same axis directions, 1 mm columns."""
    rotation = rotation_matrix((17.0, -5.0, 9.0))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.5, 2.0, 3.0])
    affine[:3, 3] = (-40.0, 12.5, 7.0)
    shape = (20, 15, 10)
    fine, fine_shape = isotropic_grid(affine, shape, 1.0)
    assert fine_shape == (30, 30, 30)
    np.testing.assert_allclose(np.linalg.norm(fine[:3, :3], axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(fine[:3, :3] / np.linalg.norm(fine[:3, :3], axis=0), rotation, atol=1e-12)
    for corner in ((-0.5, -0.5, -0.5), tuple(n - 0.5 for n in shape)):
        fine_corner = tuple((c + 0.5) * f - 0.5 for c, f in zip(corner, (1.5, 2.0, 3.0)))
        np.testing.assert_allclose(fine @ (*fine_corner, 1.0), affine @ (*corner, 1.0), atol=1e-9)


def test_checks_md_names_each_dicom_rows_controls(tmp_path) -> None:
    """Both DICOM rows ((e) with every control, (f) with one) are written out; each control under its name."""
    agree = {"CSF": 0.8, "GM": 0.9, "WM": 0.95, "mean": 0.883}
    rows = [
        {"condition": "scan: moved, oblique 17° DICOM vs NIfTI", "group": "real: scan", "dice": agree,
         "agreement": 0.9, "controls": {"nifti_read_vs_in_memory": agree, "axial_dicom_vs_nifti": agree,
                                        "oblique_dicom_vs_oblique_nifti": agree, "nifti_dice_vs_reference": agree}},
        {"condition": "scan: moved, 1 mm, oblique 17° DICOM vs NIfTI", "group": "real: scan", "dice": agree,
         "agreement": 0.93, "controls": {"nifti_dice_vs_reference": {**agree, "mean": 0.812}}},
    ]
    results = {
        "rows": rows, "model_dir": "models/x", "git_commit": "abc", "total_seconds": 1.0,
        "model": {"weights_sha256": "0" * 64, "temperature": 1.2},
        "settings": {"tta": False, "quick": False, "ece_bins": 15, "boundary_margin_voxels": 2.0},
        "environment": {"cpus": 2, "torch_threads": 2, "load_average_at_start": [0.5, 0.5, 0.5]},
    }
    _, md_path = write_outputs(results, tmp_path)
    text = md_path.read_text(encoding="utf-8")
    assert "| scan: moved, 1 mm, oblique 17° DICOM vs NIfTI |" in text and "| 0.93 |" in text
    assert "axial DICOM vs NIfTI 0.883; oblique DICOM vs the same oblique data as NIfTI 0.883" in text
    assert "scan: moved, 1 mm, oblique 17° DICOM vs NIfTI, controls (mean class agreement or Dice): NIfTI path " \
           "vs reference: mean Dice 0.812." in text
