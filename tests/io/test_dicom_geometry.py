"""DICOM series geometry: write known volumes, read them back, compare with dcm2niix's
convention, SimpleITK's world coordinates and (when installed) the dcm2niix binary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medseg.errors import InputError, OutputError
from medseg.io.dicom import read_dicom_series, read_enhanced_dicom
from medseg.io.dicom_export import write_dicom_series
from medseg.types import LPS_TO_RAS, Volume

ATOL_MM = 1e-3
OBLIQUE = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()

# name -> (rotation whose columns are the RAS directions of i, j, k; spacing)
CASES = {
    "axial_las": (np.diag([-1.0, 1.0, 1.0]), (0.8, 0.9, 2.5)),
    "axial_ras": (np.eye(3), (0.7, 0.7, 3.0)),
    "sagittal_psr": (np.array([[0, 0, 1], [-1, 0, 0], [0, 1, 0]], dtype=float), (0.5, 0.6, 2.0)),
    "coronal_lsp": (np.array([[-1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float), (0.5, 1.5, 0.6)),
    "oblique": (OBLIQUE @ np.diag([-1.0, 1.0, 1.0]), (0.7, 0.9, 2.2)),
    "oblique_positive": (OBLIQUE, (1.1, 0.6, 1.7)),
}


def flip_k(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """The array and affine of ``volume`` with its k axis reversed (same voxels in space)."""
    n_slices = volume.array.shape[3]
    affine = volume.affine.copy()
    affine[:, 3] = volume.affine @ [0, 0, n_slices - 1, 1]
    affine[:, 2] = -volume.affine[:, 2]
    return volume.array[..., ::-1], affine


def dcm2niix_affine(files: list[Path]) -> np.ndarray:
    """dcm2niix's sform from the slice tags (nifti_dicom2mat, slices along the normal, nii_flipY)."""
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(headers[0].ImageOrientationPatient, dtype=float)
    row, column = iop[:3], iop[3:]
    normal = np.cross(row, column)
    positions = sorted((np.array(h.ImagePositionPatient, dtype=float) for h in headers), key=lambda p: p @ normal)
    row_spacing, column_spacing = (float(v) for v in headers[0].PixelSpacing)
    slice_spacing = (positions[-1] - positions[0]) @ normal / (len(positions) - 1)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row * column_spacing, column * row_spacing, normal * slice_spacing])
    lps[:3, 3] = positions[0]
    rows = int(headers[0].Rows)
    flipped = lps.copy()  # nii_flipY: origin moves to the last row, the j column changes sign
    flipped[:, 3] = lps @ [0, rows - 1, 0, 1]
    flipped[:, 1] = -lps[:, 1]
    return LPS_TO_RAS @ flipped


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_matches_dcm2niix_convention(case, make_affine, make_volume, write_series):
    rotation, spacing = CASES[case]
    volume = make_volume(shape=(7, 5, 4), affine=make_affine(rotation, spacing, (-12.3, 45.6, 7.8)))
    files = write_series(volume, modality="CT")
    read = read_dicom_series(files[0].parent)
    if np.linalg.det(volume.affine) < 0:
        expected_array, expected_affine = volume.array, volume.affine
    else:  # written in reverse k order: read back with k reversed
        expected_array, expected_affine = flip_k(volume)
    np.testing.assert_allclose(read.affine, expected_affine, atol=ATOL_MM)
    np.testing.assert_allclose(read.affine, dcm2niix_affine(files), atol=ATOL_MM)
    assert read.array.dtype == np.int16
    np.testing.assert_array_equal(read.array, expected_array)
    assert np.linalg.det(read.affine) < 0
    np.testing.assert_allclose(read.spacing, spacing, atol=ATOL_MM)


@pytest.mark.parametrize("case", ["axial_las", "sagittal_psr", "oblique", "oblique_positive"])
def test_world_coordinates_match_simpleitk(case, make_affine, make_volume, write_series):
    rotation, spacing = CASES[case]
    volume = make_volume(shape=(6, 5, 4), affine=make_affine(rotation, spacing, (3.0, -4.0, 5.0)))
    folder = write_series(volume, modality="MR")[0].parent
    read = read_dicom_series(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    index_to_lps = np.eye(4)
    index_to_lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    index_to_lps[:3, 3] = image.GetOrigin()
    ijk = np.indices(read.spatial_shape).reshape(3, -1)
    ras = read.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    xyz = np.linalg.inv(index_to_lps) @ (LPS_TO_RAS @ ras)  # SimpleITK (x, y, z) index of each voxel
    np.testing.assert_allclose(xyz[:3], np.round(xyz[:3]), atol=1e-3)
    x, y, z = np.round(xyz[:3]).astype(int)
    sitk_values = sitk.GetArrayFromImage(image)[z, y, x]
    np.testing.assert_array_equal(read.array[0][tuple(ijk)], sitk_values)


def test_lps_to_ras_signs_of_a_hand_written_axial_series(tmp_path, hand_slice):
    """Axial slices written with pydicom alone: IOP [1,0,0,0,1,0] (rows run to patient left,
    columns to posterior), IPP (LPS) (-100, -120, 50 + 2k), PixelSpacing [0.5 row, 0.6 column]."""
    rows, columns = 4, 3
    pixels = [np.arange(rows * columns, dtype=np.int16).reshape(rows, columns) + 100 * k for k in range(3)]
    for k in (2, 0, 1):  # written out of order on purpose
        hand_slice(tmp_path / f"{k}.dcm", pixels[k], (-100.0, -120.0, 50.0 + 2 * k), (1, 0, 0, 0, 1, 0),
                   (0.5, 0.6), series_uid="1.2.3.6", instance=k + 1)
    read = read_dicom_series(tmp_path)
    expected = np.array([
        [-0.6, 0.0, 0.0, 100.0],  # i: column index -> patient left (RAS x decreases)
        [0.0, 0.5, 0.0, 118.5],  # j: rows bottom-up -> anterior; origin at the last row: LPS y -120 + 3 * 0.5
        [0.0, 0.0, 2.0, 50.0],  # k: ascending along the normal (superior)
        [0.0, 0.0, 0.0, 1.0],
    ])
    np.testing.assert_allclose(read.affine, expected, atol=1e-9)
    assert read.orientation == "LAS"
    for k in range(3):  # DICOM pixel (r, c) is voxel (c, Rows - 1 - r, k)
        np.testing.assert_array_equal(read.array[0, :, :, k], pixels[k][::-1, :].T)
    assert [Path(f).name for f in read.source.files] == ["0.dcm", "1.dcm", "2.dcm"]
    ras_of_first_pixel = read.affine @ [0, rows - 1, 0, 1]
    np.testing.assert_allclose(ras_of_first_pixel[:3], [100.0, 120.0, 50.0])  # = IPP (-100, -120, 50) in RAS


def test_writer_tags_and_file_names(tmp_path, make_volume):
    volume = make_volume(shape=(3, 4, 3))  # axial LAS, spacing (0.8, 0.9, 2.5), origin (10, -20, 30)
    files = write_dicom_series(volume, tmp_path / "out", modality="CT", patient_id="SECRET-ID",
                               patient_name="Doe^Jane", series_description="test")
    assert [f.name for f in files] == ["slice_0001.dcm", "slice_0002.dcm", "slice_0003.dcm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    first = pydicom.dcmread(files[0])
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert first.preamble == b"\x00" * 128
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    # voxel (0, J-1, 0) is RAS (10, -20 + 0.9 * 3, 30) -> LPS (-10, 17.3, 30)
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], [-10.0, 17.3, 30.0], atol=1e-9)
    assert [float(v) for v in first.PixelSpacing] == [0.9, 0.8]
    assert float(first.SliceThickness) == float(first.SpacingBetweenSlices) == 2.5
    assert (first.Rows, first.Columns, first.BitsAllocated, first.PixelRepresentation) == (4, 3, 16, 1)
    assert [int(pydicom.dcmread(f).InstanceNumber) for f in files] == [1, 2, 3]
    assert [float(pydicom.dcmread(f).SliceLocation) for f in files] == [30.0, 32.5, 35.0]
    uids = {(d.StudyInstanceUID, d.SeriesInstanceUID, d.FrameOfReferenceUID) for d in map(pydicom.dcmread, files)}
    assert len(uids) == 1
    assert all("SECRET" not in f.name and "Doe" not in f.name for f in files)


def test_writer_rescale_and_float_values(tmp_path, make_volume):
    base = make_volume(shape=(4, 3, 3), low=-2000, high=2000)
    volume = base.with_array(base.array.astype(np.float32) * 0.5 - 1024.0)
    write_dicom_series(volume, tmp_path / "ct", modality="CT", rescale_slope=0.5, rescale_intercept=-1024.0)
    read = read_dicom_series(tmp_path / "ct")
    assert read.array.dtype == np.float32  # half-integers are not int16-exact
    np.testing.assert_array_equal(read.array, volume.array)
    with pytest.raises(ValueError, match="do not fit int16"):
        write_dicom_series(base.with_array(base.array * 100.0), tmp_path / "big")
    assert not (tmp_path / "big").exists()


def test_writer_refuses_non_empty_folder_sheared_affine_and_channels(tmp_path, make_volume):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "other.txt").write_text("x")
    volume = make_volume(shape=(3, 3, 3))
    with pytest.raises(OutputError, match="not an empty folder"):
        write_dicom_series(volume, tmp_path / "busy")
    sheared = volume.affine.copy()
    sheared[0, 2] = 1.0
    with pytest.raises(ValueError, match="sheared"):
        write_dicom_series(Volume(volume.array, sheared), tmp_path / "sheared")
    with pytest.raises(ValueError, match="one channel"):
        write_dicom_series(Volume(np.zeros((2, 3, 3, 3)), volume.affine, ("a", "b")), tmp_path / "two")
    with pytest.raises(ValueError, match="modality"):
        write_dicom_series(volume, tmp_path / "pet", modality="PT")
    (tmp_path / "empty").mkdir()
    assert len(write_dicom_series(volume, tmp_path / "empty")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


def test_source_info(write_series):
    files = write_series(modality="CT", series_description="chest", study_uid="1.2.3", series_uid="1.2.3.4")
    read = read_dicom_series(files[0].parent)
    assert read.source.format == "dicom-series"
    assert (read.source.modality, read.source.description) == ("CT", "chest")
    assert read.source.files == tuple(str(f) for f in files)
    dicom = read.source.dicom
    assert (dicom["StudyInstanceUID"], dicom["SeriesInstanceUID"]) == ("1.2.3", "1.2.3.4")
    assert dicom["sop_instance_uids"] == tuple(pydicom.dcmread(f).SOPInstanceUID for f in files)
    assert dicom["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert dicom["flip_rows"] is True
    assert dicom["FrameOfReferenceUID"] == pydicom.dcmread(files[0]).FrameOfReferenceUID


def test_empty_slice_thickness_uses_positions(write_series, make_volume):
    volume = make_volume(shape=(4, 4, 5))
    files = write_series(volume)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.SliceThickness = None
        del ds.SpacingBetweenSlices
        ds.save_as(path)
    np.testing.assert_allclose(read_dicom_series(files[0].parent).affine, volume.affine, atol=ATOL_MM)


def test_enhanced_multiframe_matches_the_series(tmp_path, write_series, enhanced_from_series, make_affine, make_volume):
    volume = make_volume(shape=(5, 4, 6), affine=make_affine(*CASES["oblique"], (1.0, 2.0, 3.0)))
    files = write_series(volume, modality="MR")
    order = [3, 0, 5, 1, 4, 2]
    path = enhanced_from_series(tmp_path / "enhanced.dcm", files, order)
    read = read_enhanced_dicom(path)
    np.testing.assert_allclose(read.affine, volume.affine, atol=ATOL_MM)
    np.testing.assert_array_equal(read.array, volume.array)
    assert read.source.format == "dicom-enhanced"
    assert read.source.dicom["frame_numbers"] == tuple(order.index(k) + 1 for k in range(6))
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(path, single / "only.dcm")
    np.testing.assert_array_equal(read_dicom_series(single).array, volume.array)  # a folder of one enhanced file


def test_single_slice_uses_slice_thickness(write_series, make_volume):
    volume = make_volume(shape=(4, 4, 3))
    files = write_series(volume)
    read = read_dicom_series(files[0].parent, files=[files[1]], min_slices=1)
    assert read.spatial_shape == (4, 4, 1)
    np.testing.assert_allclose(read.affine[:3, 2], volume.affine[:3, 2], atol=ATOL_MM)
    with pytest.raises(InputError, match="only 1 slice"):
        read_dicom_series(files[0].parent, files=[files[1]])


def _dcm2niix() -> str | None:
    found = shutil.which("dcm2niix")
    if found:
        return found
    try:
        import dcm2niix  # the PyPI wrapper ships the binary
    except ImportError:
        return None
    return str(dcm2niix.bin)


@pytest.mark.skipif(_dcm2niix() is None, reason="dcm2niix is not installed (pip install dcm2niix)")
@pytest.mark.parametrize("case", ["axial_las", "axial_ras", "sagittal_psr", "coronal_lsp", "oblique"])
@pytest.mark.parametrize("falling_instances", [False, True])
def test_matches_the_dcm2niix_binary(case, falling_instances, tmp_path, make_affine, make_volume, write_series):
    rotation, spacing = CASES[case]
    files = write_series(make_volume(shape=(7, 5, 4), affine=make_affine(rotation, spacing, (1.0, -2.0, 3.0))))
    if falling_instances:
        for path in files:
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = len(files) + 1 - int(ds.InstanceNumber)
            ds.save_as(path)
    read = read_dicom_series(files[0].parent)
    out = tmp_path / "nifti"
    out.mkdir()
    subprocess.run([_dcm2niix(), "-o", str(out), "-f", "x", "-z", "n", "-b", "n", str(files[0].parent)],
                   check=True, capture_output=True)
    image = nibabel.load(out / "x.nii")
    np.testing.assert_allclose(image.affine, read.affine, atol=ATOL_MM)
    np.testing.assert_array_equal(np.asarray(image.dataobj), read.array[0])


def test_series_of_one_frame_enhanced_files(tmp_path, write_series, enhanced_from_series, make_volume):
    volume = make_volume(shape=(4, 5, 3))
    files = write_series(volume)
    folder = tmp_path / "enhanced_slices"
    folder.mkdir()
    for n in range(3):
        enhanced_from_series(folder / f"frame{n}.dcm", files, [n])
    read = read_dicom_series(folder)
    np.testing.assert_allclose(read.affine, volume.affine, atol=ATOL_MM)
    np.testing.assert_array_equal(read.array, volume.array)
