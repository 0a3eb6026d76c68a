"""Predictor geometry: every output lies on the input's grid, whatever the input orientation or format."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from predictor_helpers import (
    oblique_affine,
    save_nifti,
    sphere_image,
    sphere_volume,
    tiny_config,
    write_model_folder,
)

from medseg.inference.predictor import Predictor
from medseg.io.dicom_export import write_dicom_series
from medseg.io.read import read_scan
from medseg.types import Volume
from medseg.windows.plans import window_count

RAS = np.diag([1.5, 1.5, 1.5, 1.0])




@pytest.fixture(scope="module")
def predictor(state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_model(write_model_folder(tmp_path_factory.mktemp("model") / "tiny", state))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _las() -> np.ndarray:
    affine = np.diag([-1.5, 1.5, 1.5, 1.0])
    affine[0, 3] = 30.0
    return affine


@pytest.mark.parametrize("affine", [RAS, _las(), oblique_affine()], ids=["RAS", "LAS", "oblique"])
def test_outputs_lie_on_the_nifti_input_grid(predictor: Predictor, affine: np.ndarray, tmp_path: Path) -> None:
    path = save_nifti(sphere_volume(affine, centre=(10, 12, 13), radius=5), tmp_path / "scan.nii.gz")
    volume = read_scan(path)
    prediction = predictor.predict(volume)
    np.testing.assert_allclose(prediction.labels.affine, volume.affine, atol=1e-5)
    assert prediction.labels.array.shape == volume.spatial_shape == (24, 24, 24)
    assert prediction.probabilities.shape == (2, 24, 24, 24) and prediction.probabilities.dtype == np.float32
    assert prediction.uncertainty.shape == (24, 24, 24)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert prediction.uncertainty.min() >= 0.0 and prediction.uncertainty.max() <= 1.0
    _, truth = sphere_image(24, (10, 12, 13), 5)
    assert _dice(prediction.labels.array, truth) > 0.8  # the mask is where the sphere is, in this layout
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    assert prediction.class_volumes_ml["sphere"] == pytest.approx(prediction.labels.array.sum() * voxel_ml)


def test_a_flipped_layout_gives_the_same_mask_in_world_space(predictor: Predictor) -> None:
    ras = sphere_volume(RAS, centre=(10, 12, 13), radius=5)
    las = Volume(ras.array[:, ::-1].copy(), _las() @ np.diag([1, 1, 1, 1]), ras.channel_names)
    las_affine = RAS.copy()
    las_affine[0, 0], las_affine[0, 3] = -1.5, 23 * 1.5  # voxel i of `las` is voxel 23 - i of `ras`
    las = Volume(las.array, las_affine, ras.channel_names)
    first, second = predictor.predict(ras), predictor.predict(las)
    assert np.array_equal(second.labels.array[::-1], first.labels.array)
    np.testing.assert_allclose(second.probabilities[:, ::-1], first.probabilities, atol=1e-5)


def test_dicom_series_and_its_nifti_conversion_give_the_same_mask_in_world_space(
    predictor: Predictor, tmp_path: Path
) -> None:
    source = sphere_volume(oblique_affine(), centre=(10, 12, 13), radius=5)
    source = source.with_array(np.round(source.array))  # DICOM stores integers
    write_dicom_series(source, tmp_path / "series")
    dicom = read_scan(tmp_path / "series")
    # The NIfTI conversion of the DICOM volume, stored in the closest canonical (RAS) voxel order.
    image = nib.as_closest_canonical(nib.Nifti1Image(dicom.array[0], dicom.affine))
    nib.save(image, tmp_path / "converted.nii.gz")
    nifti = read_scan(tmp_path / "converted.nii.gz")
    assert dicom.orientation != nifti.orientation  # really two voxel layouts

    from_dicom, from_nifti = predictor.predict(dicom), predictor.predict(nifti)
    np.testing.assert_allclose(from_dicom.labels.affine, dicom.affine, atol=1e-5)
    np.testing.assert_allclose(from_nifti.labels.affine, nifti.affine, atol=1e-5)
    # Map every NIfTI voxel through the affines to its DICOM voxel and compare there.
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in nifti.spatial_shape), indexing="ij"), -1).reshape(-1, 3)
    world = nib.affines.apply_affine(nifti.affine, ijk)
    mapped = nib.affines.apply_affine(np.linalg.inv(dicom.affine), world)
    np.testing.assert_allclose(mapped, np.round(mapped), atol=1e-3)  # the same voxel centres
    mapped = np.round(mapped).astype(int)
    dicom_labels = from_dicom.labels.array[mapped[:, 0], mapped[:, 1], mapped[:, 2]]
    assert np.array_equal(dicom_labels, from_nifti.labels.array.reshape(-1))
    assert from_nifti.labels.array.sum() > 100


def test_probabilities_are_resampled_back_when_the_model_works_at_another_spacing(
    state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    config = tiny_config(transforms__spacing=[2.0, 2.0, 2.0])
    predictor = Predictor.from_model(write_model_folder(tmp_path / "coarse", state, config))
    volume = sphere_volume(oblique_affine(1.5), centre=(11, 12, 12), radius=7, seed=3)
    prediction = predictor.predict(volume)
    assert prediction.probabilities.shape == (2, 24, 24, 24)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(prediction.labels.affine, volume.affine, atol=1e-5)
    assert np.array_equal(prediction.labels.array, prediction.probabilities.argmax(axis=0))
    _, truth = sphere_image(24, (11, 12, 12), 7)
    assert _dice(prediction.labels.array, truth) > 0.75


def test_the_input_volume_is_left_unchanged(predictor: Predictor) -> None:
    volume = sphere_volume(RAS)
    before = volume.array.copy()
    predictor.predict(volume)
    assert np.array_equal(volume.array, before)


@pytest.mark.parametrize(("shape", "window", "overlap"), [
    ((24, 24, 24), (16, 16, 16), 0.25), ((10, 24, 16), (16, 16, 16), 0.5), ((100, 37, 5), (32, 16, 8), 0.6),
])
def test_window_count_matches_monai_sliding_window(shape: tuple, window: tuple, overlap: float) -> None:
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    padded = tuple(max(s, w) for s, w in zip(shape, window))
    interval = _get_scan_interval(padded, window, 3, (overlap,) * 3)
    assert window_count(shape, window, overlap) == len(dense_patch_slices(padded, window, interval))


def test_deepmedic_goes_through_valid_sliding_windows_onto_the_source_grid(tmp_path: Path) -> None:
    from medseg.networks import build_network

    config = tiny_config(
        network__name="deepmedic", network__deepmedic_channels=[4, 4, 4, 4], network__deepmedic_fc_channels=[8],
        network__deepmedic_residual_layers=[4], network__patch_size=[], network__window_size=[9, 9, 9],
    )
    torch.manual_seed(0)
    folder = write_model_folder(tmp_path / "deepmedic", build_network(config.network).state_dict(), config)
    volume = sphere_volume(oblique_affine(), centre=(10, 12, 13), radius=5)
    calls: list[float] = []
    predictor = Predictor.from_model(folder)
    assert predictor.channels_last and not Predictor.from_model(folder, channels_last=False).channels_last
    prediction = predictor.predict(volume, progress=calls.append)
    np.testing.assert_allclose(prediction.labels.affine, volume.affine, atol=1e-5)
    assert prediction.probabilities.shape == (2, 24, 24, 24)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=0), 1.0, atol=1e-5)
    # The segments plan: the whole 24^3 volume in one forward (it fits the memory budget), plus three stage reports.
    assert len(calls) == 1 + 3
