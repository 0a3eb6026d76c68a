"""RT Structure Set export: contours read back and rasterised independently match the mask (Dice >= 0.95)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolygonPath

from medseg.errors import InputError
from medseg.io import read_scan
from medseg.io.rtstruct import write_rtstruct
from medseg.types import Volume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review"))
from dicom_validation import dciodvfy_errors  # noqa: E402

CLASSES = ("background", "ball", "ring", "absent")


def _labels(shape: tuple[int, int, int]) -> np.ndarray:
    """(I, J, K) labels: a ball (1) and a ring with a hole (2); class 3 nowhere."""
    i, j, k = np.indices(shape)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[(i - 10) ** 2 + (j - 12) ** 2 + ((k - 4) * 2) ** 2 <= 36] = 1
    radius = (i - 26) ** 2 + (j - 18) ** 2
    labels[(radius <= 49) & (radius >= 9) & (k >= 2) & (k <= 6)] = 2
    return labels


def rasterise(path: Path, reference: Volume) -> dict[str, np.ndarray]:
    """Each ROI of an RTSTRUCT as an (I, J, K) mask, by even-odd point-in-polygon at voxel centres.

    Independent of the writer's geometry: contour points (LPS) go to voxels through the volume's
    RAS affine, each must lie on the plane of the slice its ContourImageSequence names.
    """
    dataset = pydicom.dcmread(path)
    slice_of = {uid: k for k, uid in enumerate(reference.source.dicom["sop_instance_uids"])}
    names = {roi.ROINumber: roi.ROIName for roi in dataset.StructureSetROISequence}
    to_voxel = np.linalg.inv(reference.affine)
    shape = reference.spatial_shape
    centres = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1).reshape(-1, 2)
    masks = {}
    for roi in dataset.ROIContourSequence:
        mask = np.zeros(shape, dtype=bool)
        for contour in getattr(roi, "ContourSequence", []):
            k = slice_of[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            lps = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            ras = np.c_[-lps[:, 0], -lps[:, 1], lps[:, 2], np.ones(len(lps))]
            voxels = (to_voxel @ ras.T).T[:, :3]
            assert np.allclose(voxels[:, 2], k, atol=1e-3), "contour off its slice's plane"
            inside = PolygonPath(voxels[:, :2]).contains_points(centres).reshape(shape[:2])
            mask[:, :, k] ^= inside
        masks[names[roi.ReferencedROINumber]] = mask
    return masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("rotation", [np.diag([-1.0, 1.0, 1.0]),  # axial (LAS)
                                      np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # sagittal
                                      None])  # oblique
def test_rtstruct_rasterises_back_to_the_mask(rotation, make_affine, write_series, tmp_path):
    if rotation is None:
        angle = np.deg2rad(17)
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    shape = (36, 30, 9)
    volume = Volume(array=np.zeros((1, *shape), dtype=np.int16), affine=make_affine(rotation, (0.8, 0.9, 2.5),
                                                                                       (10.0, -20.0, 30.0)))
    files = write_series(volume, patient_name="Doe^Jane", patient_id="PID-4711")
    reference = read_scan(files[0].parent)
    labels = _labels(reference.spatial_shape)
    path = write_rtstruct(labels, tmp_path / "out" / "rtstruct.dcm", reference, CLASSES)

    masks = rasterise(path, reference)
    assert set(masks) == {"ball", "ring", "absent"}
    for number, name in enumerate(CLASSES[1:3], start=1):
        score = dice(masks[name], labels == number)
        assert score >= 0.95, (name, score)
    assert not masks["absent"].any()
    ring_hole = (26, 18, 4)  # inside the ring's hole: even-odd leaves it empty
    assert labels[ring_hole] == 0 and not masks["ring"][ring_hole]

    written = pydicom.dcmread(path)
    assert written.Modality == "RTSTRUCT" and written.StudyInstanceUID == reference.source.dicom["StudyInstanceUID"]
    series = written.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == reference.source.dicom["SeriesInstanceUID"]
    assert len(series.ContourImageSequence) == shape[2]
    errors = dciodvfy_errors(path)
    assert errors in (None, []), errors


def test_rtstruct_refuses_nifti(tmp_path, make_volume):
    import nibabel as nib

    volume = make_volume()
    nib.save(nib.Nifti1Image(volume.array[0], volume.affine), tmp_path / "scan.nii.gz")
    reference = read_scan(tmp_path / "scan.nii.gz")
    with pytest.raises(InputError, match="needs a single-frame DICOM series"):
        write_rtstruct(np.zeros(reference.spatial_shape, dtype=np.uint8), tmp_path / "rt.dcm", reference, CLASSES)
