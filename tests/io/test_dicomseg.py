"""DICOM-SEG export: read back with highdicom, frames match the mask voxel for voxel on the source slices."""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom
import numpy as np
import pydicom
import pytest

from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.dicom_export import write_dicom_series
from medseg.io.dicomseg import write_dicom_seg
from medseg.io.read import read_scan
from medseg.types import LabelVolume, Volume

CLASS_NAMES = ("background", "grey matter", "white matter", "absent")
MARKERS = ("ZZNAMEMARKER", "ZZIDMARKER")


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


AXIAL = np.array([[-0.8, 0, 0, 30], [0, 0.9, 0, -20], [0, 0, 2.5, 10], [0, 0, 0, 1]])
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = _rotation(np.array([1.0, 0.3, 0.2]), 25) @ np.array([[0, 0, -2.0], [-0.7, 0, 0], [0, 0.9, 0]])
OBLIQUE[:3, 3] = (5, -12, 40)


def _asymmetric_labels(shape: tuple[int, int, int]) -> np.ndarray:
    """Labels with no symmetry along any axis, so a flipped or transposed frame cannot match."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[1:4, 2:7, 1:3] = 1
    labels[5, 1:3, 2:5] = 2
    labels[0, 0, 0] = 2
    labels[shape[0] - 1, shape[1] - 2, shape[2] - 1] = 1
    return labels


def _assert_identifiers_only_in_patient_module(dataset: pydicom.Dataset) -> None:
    for element in dataset.iterall():
        if element.keyword not in ("PatientName", "PatientID") and element.VR not in ("SQ", "OB", "OW"):
            assert not any(m.split("^")[0] in str(element.value) for m in MARKERS), element.keyword


@pytest.mark.parametrize("affine", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_seg_frames_match_the_mask_on_each_source_slice(tmp_path: Path, affine: np.ndarray) -> None:
    shape = (7, 9, 5)
    image = np.arange(np.prod(shape), dtype=np.int16).reshape((1,) + shape)
    write_dicom_series(Volume(array=image, affine=affine), tmp_path / "series",
                       patient_name=MARKERS[0], patient_id=MARKERS[1])
    scan = read_dicom_series(tmp_path / "series")
    labels = _asymmetric_labels(scan.spatial_shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_dicom_seg(LabelVolume(labels, scan.affine), tmp_path / "out" / "seg.dcm", scan, CLASS_NAMES,
                               algorithm_version="test-1")
    assert not [w for w in caught if any(m in str(w.message) for m in MARKERS)]  # no identifier in warnings

    seg = highdicom.seg.segread(path)
    assert seg.SeriesDescription == "medseg segmentation"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(CLASS_NAMES[1:])
    assert all(s.SegmentAlgorithmType == "AUTOMATIC" for s in seg.SegmentSequence)
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == scan.source.dicom["SeriesInstanceUID"]
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == set(
        scan.source.dicom["sop_instance_uids"])
    assert seg.StudyInstanceUID == scan.source.dicom["StudyInstanceUID"]
    assert seg.FrameOfReferenceUID == scan.source.dicom["FrameOfReferenceUID"]
    assert str(seg.PatientName) == MARKERS[0]  # the patient module is copied from the source
    _assert_identifiers_only_in_patient_module(seg)

    uids = list(scan.source.dicom["sop_instance_uids"])
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2, 3])  # (K, Rows, Columns, 3)
    for number in (1, 2, 3):
        for k in range(scan.spatial_shape[2]):
            expected = (labels[:, ::-1, k] == number).T  # DICOM rows top-down
            np.testing.assert_array_equal(pixels[k, :, :, number - 1], expected, err_msg=f"segment {number}, k={k}")
    # and the frames' positions are the source slices' positions
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = pydicom.dcmread(scan.source.files[uids.index(source_uid)], stop_before_pixels=True)
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in position], [float(v) for v in source.ImagePositionPatient],
                                   atol=1e-3)


def test_seg_refuses_bad_input(tmp_path: Path) -> None:
    image = np.zeros((1, 4, 5, 3), dtype=np.int16)
    write_dicom_series(Volume(array=image, affine=AXIAL), tmp_path / "series")
    scan = read_dicom_series(tmp_path / "series")
    with pytest.raises(InputError, match="does not match the series grid"):
        write_dicom_seg(np.zeros((4, 5, 2), np.uint8), tmp_path / "a.dcm", scan, CLASS_NAMES)
    with pytest.raises(InputError, match="outside 0..3"):
        write_dicom_seg(np.full((4, 5, 3), 4, np.uint8), tmp_path / "a.dcm", scan, CLASS_NAMES)
    with pytest.raises(InputError, match="needs a DICOM source"):
        write_dicom_seg(np.zeros((4, 5, 3), np.uint8), tmp_path / "a.dcm", Volume(image, AXIAL), CLASS_NAMES)
    assert not list(tmp_path.glob("*.dcm")) and not list(tmp_path.glob(".*"))


def test_seg_on_an_enhanced_source_follows_its_frame_order(tmp_path: Path, enhanced_from_series) -> None:
    shape = (6, 8, 4)
    image = np.arange(np.prod(shape), dtype=np.int16).reshape((1,) + shape)
    files = write_dicom_series(Volume(array=image, affine=AXIAL), tmp_path / "series")
    enhanced = enhanced_from_series(tmp_path / "enhanced.dcm", files, [2, 0, 3, 1])
    dataset = pydicom.dcmread(enhanced)  # the hand-made object lacks the patient and study modules
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(dataset, keyword, "")
    dataset.save_as(enhanced)
    scan = read_scan(enhanced)
    labels = _asymmetric_labels(scan.spatial_shape)
    path = write_dicom_seg(labels, tmp_path / "seg.dcm", scan, CLASS_NAMES[:3])
    seg = highdicom.seg.segread(path)
    frame_numbers = list(scan.source.dicom["frame_numbers"])
    for number in (1, 2):
        for k, frame_number in enumerate(frame_numbers):
            pixels = seg.get_pixels_by_source_frame(
                scan.source.dicom["sop_instance_uids"][0], [frame_number], segment_numbers=[number],
                assert_missing_frames_are_empty=True)
            np.testing.assert_array_equal(pixels[0, :, :, 0], (labels[:, ::-1, k] == number).T)


def test_empty_labels_and_a_source_without_patient_module(tmp_path: Path, enhanced_from_series) -> None:
    image = np.zeros((1, 4, 5, 3), dtype=np.int16)
    files = write_dicom_series(Volume(array=image, affine=AXIAL), tmp_path / "series")
    scan = read_dicom_series(tmp_path / "series")
    seg = highdicom.seg.segread(write_dicom_seg(np.zeros((4, 5, 3), np.uint8), tmp_path / "empty.dcm", scan,
                                                CLASS_NAMES[:2]))
    pixels = seg.get_pixels_by_source_instance(list(scan.source.dicom["sop_instance_uids"]), segment_numbers=[1],
                                               assert_missing_frames_are_empty=True)
    assert pixels.shape == (3, 5, 4, 1) and not pixels.any()
    bare = read_scan(enhanced_from_series(tmp_path / "enhanced.dcm", files, [0, 1, 2]))
    with pytest.raises(InputError, match="cannot build a DICOM-SEG"):
        write_dicom_seg(np.zeros((4, 5, 3), np.uint8), tmp_path / "bare.dcm", bare, CLASS_NAMES[:2])
    assert not (tmp_path / "bare.dcm").exists()
