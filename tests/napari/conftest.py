"""Fixtures for the napari tests: the phantoms of napari_phantoms.py on disk as NIfTI and DICOM."""

from __future__ import annotations

import pytest
from napari_phantoms import SAGITTAL, oblique_affine, phantom

pytest.importorskip("napari")


@pytest.fixture
def oblique_nifti(tmp_path):
    import nibabel as nib

    volume, mask = phantom(oblique_affine())
    path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(volume.array[0], volume.affine), path)
    return path, mask


@pytest.fixture
def sagittal_dicom(tmp_path):
    from medseg.io.dicom_export import write_dicom_series

    volume, mask = phantom(SAGITTAL)
    folder = tmp_path / "sagittal_series"
    write_dicom_series(volume, folder, modality="MR", series_description="sagittal phantom")
    return folder, mask
