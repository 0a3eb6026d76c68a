"""Brain-tissue sample: seeded subjects that differ like real ones, on label grids that match, and a DICOM copy."""

from __future__ import annotations

from pathlib import Path

import nibabel
import nibabel.orientations
import numpy as np
import pytest
from sample_helpers import canonical

from medseg.data.brain_sample import (
    BrainSubjectParams,
    draw_subject_params,
    make_brain_subject,
)
from medseg.data.decathlon import read_datalist
from medseg.data.sample_config import BrainAugmentation, load_sample_definition
from medseg.data.template import TISSUE_CLASSES, tissue_template

AUGMENT = BrainAugmentation(spacings=((3.0, 3.0, 3.0), (2.5, 2.5, 4.0)), orientations=("RAS", "LPS", "LIA"))


def test_subject_parameters_are_a_function_of_seed_and_index() -> None:
    params = [draw_subject_params(AUGMENT, seed=1, index=i) for i in range(12)]
    assert params[3] == draw_subject_params(AUGMENT, seed=1, index=3)
    assert params[3] != draw_subject_params(AUGMENT, seed=2, index=3)
    assert len({p.transform_seed for p in params}) == 12
    assert {p.spacing for p in params} == set(AUGMENT.spacings)
    assert {p.orientation for p in params} == set(AUGMENT.orientations)
    assert all(AUGMENT.gain[0] <= p.gain <= AUGMENT.gain[1] for p in params)
    assert all(AUGMENT.noise_std[0] <= p.noise_std <= AUGMENT.noise_std[1] for p in params)


def test_same_parameters_same_subject_other_seed_other_anatomy() -> None:
    template, labels = tissue_template(downsample=3, margin_mm=6.0)
    params = BrainSubjectParams(transform_seed=5, spacing=(3.0, 3.0, 3.0), orientation="RAS", gain=200.0,
                                noise_std=0.01)
    image_a, labels_a = make_brain_subject(template, labels, AUGMENT, params)
    image_b, labels_b = make_brain_subject(template, labels, AUGMENT, params)
    np.testing.assert_array_equal(image_a.array, image_b.array)
    np.testing.assert_array_equal(labels_a.array, labels_b.array)
    other = BrainSubjectParams(6, (3.0, 3.0, 3.0), "RAS", 200.0, 0.01)
    image_c, labels_c = make_brain_subject(template, labels, AUGMENT, other)
    assert image_c.array.shape == image_a.array.shape
    changed = (labels_a.array != labels_c.array).mean() / (labels_a.array > 0).mean()
    assert 0.05 < changed < 0.8  # a different brain, not a different organ


def test_resolution_and_orientation_changes() -> None:
    template, labels = tissue_template(downsample=3, margin_mm=6.0)
    params = BrainSubjectParams(9, (2.5, 2.5, 4.0), "LIA", 220.0, 0.02)
    image, subject_labels = make_brain_subject(template, labels, AUGMENT, params)
    assert image.orientation == "LIA"
    np.testing.assert_allclose(image.spacing, (2.5, 2.5, 4.0), atol=1e-6)
    np.testing.assert_array_equal(image.affine, subject_labels.affine)
    # Same field of view: extent along the axes (mm) within one voxel of the template's.
    template_extent = np.array(template.array.shape[1:]) * 3.0
    extent = np.array(image.array.shape[1:]) * np.array(image.spacing)
    order = np.abs(nibabel.orientations.io_orientation(image.affine)[:, 0]).astype(int)
    assert np.all(np.abs(template_extent[order] - extent) <= np.array(image.spacing) + 1e-6)


def test_built_brain_dataset(brain_dataset: Path, brain_definition: Path) -> None:
    config = load_sample_definition(brain_definition)
    datalist = read_datalist(brain_dataset)
    assert datalist.modalities == ("T1",) and datalist.labels == TISSUE_CLASSES
    assert [c.patient_id for c in datalist.training] == ["brain_000", "brain_001"]
    assert [c.patient_id for c in datalist.test] == ["brain_002"]
    for index, case in enumerate(datalist.training + datalist.test):
        params = draw_subject_params(config.augment, config.seed, index)
        image_file, label_file = nibabel.load(case.images[0]), nibabel.load(case.label)
        image, labels = np.asarray(image_file.dataobj), np.asarray(label_file.dataobj)
        assert image.dtype == np.uint8 and labels.dtype == np.uint8
        assert image.shape == labels.shape
        np.testing.assert_array_equal(image_file.affine, label_file.affine)
        assert int(image_file.header["qform_code"]) == int(image_file.header["sform_code"]) == 1
        assert "".join(nibabel.orientations.aff2axcodes(image_file.affine)) == params.orientation
        np.testing.assert_allclose(image_file.header.get_zooms(), params.spacing, atol=1e-5)
        counts = np.bincount(labels.ravel(), minlength=4)
        assert counts.size == 4
        csf, gm, wm = counts[1:] / counts[1:].sum()
        assert 0.04 < csf < 0.15 and 0.45 < gm < 0.68 and 0.22 < wm < 0.42
        means = [float(image[labels == c].mean()) for c in (1, 2, 3)]
        assert means[0] < means[1] < means[2]  # T1 contrast survives gamma, bias and noise
        assert (image[labels == 0] == 0).mean() > 0.8  # skull-stripped background
        assert 150 <= int(np.percentile(image[labels > 0], 99)) <= 255


def test_dicom_copy_reads_back_as_the_nifti(brain_dataset: Path) -> None:
    from medseg.io.read import read_scan

    folder = brain_dataset.parent / "dicom" / "brain_000"
    assert len(list(folder.glob("*.dcm"))) > 10
    dicom = read_scan(folder)
    nifti = read_scan(brain_dataset.parent / "imagesTr" / "brain_000.nii.gz")
    assert dicom.source.format == "dicom-series" and dicom.source.modality == "MR"
    dicom_array, dicom_affine = canonical(dicom.array[0], dicom.affine)
    nifti_array, nifti_affine = canonical(nifti.array[0], nifti.affine)
    np.testing.assert_allclose(dicom_affine, nifti_affine, atol=1e-3)
    np.testing.assert_array_equal(dicom_array.astype(np.int16), nifti_array.astype(np.int16))


@pytest.mark.parametrize("index", [0, 1])
def test_dicom_holds_only_synthetic_identifiers(brain_dataset: Path, index: int) -> None:
    import pydicom

    files = sorted((brain_dataset.parent / "dicom" / "brain_000").glob("*.dcm"))
    ds = pydicom.dcmread(files[index], stop_before_pixels=True)
    assert str(ds.PatientName) == "SAMPLE^BRAIN" and ds.PatientID == "SAMPLE000"
    assert ds.Modality == "MR"
