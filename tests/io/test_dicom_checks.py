"""Every DICOM check, on series written then damaged, and on pydicom's real test files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import JPEGLosslessSV1, generate_uid

from medseg.errors import InputError
from medseg.io.dicom import (
    is_dicom_file,
    read_dicom_header,
    read_dicom_series,
    read_enhanced_dicom,
)
from medseg.io.dicom_checks import summarize_series


def edit(path: Path, **tags) -> None:
    """Set (or, with None, delete) tags of one file."""
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


def position(path: Path) -> np.ndarray:
    return np.array(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient, dtype=float)


def copy_as_new_instance(source: Path, target: Path, **tags) -> None:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(target)


def raises(where: Path, match: str, *, files=None, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as caught:
        read_dicom_series(where, files, **kwargs)
    assert caught.value.hint, "every InputError carries a hint"
    return caught.value


# --- damaged series ---------------------------------------------------------------------------

def test_missing_middle_slice(write_series):
    files = write_series()  # 4 slices, 2.5 mm apart
    files[2].unlink()
    error = raises(files[0].parent, "missing slice")
    assert "5.000 mm" in error.reason and "median step is 2.500 mm" in error.reason
    assert error.path == str(files[0].parent)


def test_duplicate_position(write_series):
    files = write_series()
    copy_as_new_instance(files[1], files[0].parent / "copy.dcm")
    raises(files[0].parent, "duplicate slice position")


def test_perturbed_position_is_uneven_spacing(write_series):
    files = write_series(None)
    normal = np.array([0.0, 0.0, 1.0])  # default volume is axial
    edit(files[1], ImagePositionPatient=list(position(files[1]) + 0.3 * normal))
    raises(files[0].parent, "uneven slice spacing")


def test_spacing_within_tolerance_is_accepted(write_series):
    files = write_series()
    edit(files[1], ImagePositionPatient=list(position(files[1]) + [0, 0, 0.02]))  # < 1 % of 2.5 mm
    assert read_dicom_series(files[0].parent).spatial_shape == (6, 5, 4)


@pytest.mark.parametrize("tilt_tag", [True, False])
def test_gantry_tilt_and_sheared_stack(write_series, tilt_tag):
    files = write_series()
    for k, path in enumerate(files):  # shift each slice along the column direction: a 15 degree tilt
        shift = np.array([0.0, k * 2.5 * np.tan(np.radians(15)), 0.0])
        tilt = {"GantryDetectorTilt": 15} if tilt_tag else {}
        edit(path, ImagePositionPatient=list(position(path) + shift), **tilt)
    error = raises(files[0].parent, "gantry tilt of 15 degrees" if tilt_tag else "not stacked along their normal")
    assert "15.00 degrees" in error.reason


def test_one_slice_with_another_orientation(write_series):
    files = write_series()
    angle = np.radians(2)
    edit(files[2], ImageOrientationPatient=[np.cos(angle), np.sin(angle), 0, -np.sin(angle), np.cos(angle), 0])
    raises(files[0].parent, "ImageOrientationPatient varies")


def test_two_echoes_in_one_series(write_series, make_volume):
    first = write_series(make_volume(seed=1), name="echo1", series_uid="1.2.3.9")
    second = write_series(make_volume(seed=2), name="echo2", series_uid="1.2.3.9")
    for path in first:
        edit(path, EchoTime=10)
    for n, path in enumerate(second):
        copy_as_new_instance(path, first[0].parent / f"echo2_{n}.dcm", EchoTime=20)
    error = raises(first[0].parent, "4D / multi-echo series")
    assert "8 images at 4 slice positions" in error.reason and "EchoTime takes values ['10.0', '20.0']" in error.reason


def test_two_time_points_in_one_series(write_series):
    files = write_series()
    for n, path in enumerate(files):
        edit(path, TemporalPositionIdentifier=1)
        copy_as_new_instance(path, path.parent / f"t2_{n}.dcm", TemporalPositionIdentifier=2)
    raises(files[0].parent, "TemporalPositionIdentifier")


def test_localizer(write_series):
    files = write_series()
    edit(files[0], ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    raises(files[0].parent, "localizer")


def test_too_few_slices(write_series, make_volume):
    files = write_series(make_volume(shape=(4, 4, 2)))
    raises(files[0].parent, "only 2 slice")
    assert read_dicom_series(files[0].parent, min_slices=2).spatial_shape == (4, 4, 2)


def test_truncated_pixel_data(write_series):
    files = write_series()
    ds = pydicom.dcmread(files[1])
    ds.PixelData = ds.PixelData[:-10]
    ds.save_as(files[1])
    error = raises(files[0].parent, "pixel data truncated: 50 bytes where")
    assert error.path == str(files[1])


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        ({"ImagePositionPatient": None}, "ImagePositionPatient is missing"),
        ({"ImageOrientationPatient": None}, "ImageOrientationPatient is missing"),
        ({"PixelSpacing": None}, "PixelSpacing is missing"),
        ({"ImagePositionPatient": [1.0, 2.0]}, "ImagePositionPatient has 2 values, expected 3"),
        ({"ImageOrientationPatient": [2, 0, 0, 0, 1, 0]}, "row direction has length 2.0000"),
        ({"ImageOrientationPatient": [1, 0, 0, 0.5, 0.8660254, 0]}, "not orthogonal"),
        ({"PixelSpacing": [0.0, 0.8]}, "PixelSpacing must be positive"),
    ],
)
def test_invalid_geometry(write_series, tags, match):
    files = write_series()
    edit(files[1], **tags)
    error = raises(files[0].parent, match)
    assert error.path == str(files[1])


def test_non_numeric_geometry_value(write_series):
    files = write_series()
    raw = files[1].read_bytes()
    value = pydicom.dcmread(files[1]).get_item("ImagePositionPatient").value  # the DS bytes as written
    files[1].write_bytes(raw.replace(value, b"x" * len(value), 1))
    raises(files[0].parent, "ImagePositionPatient holds a non-numeric value")


def test_mixed_sizes_and_pixel_spacing(write_series):
    files = write_series()
    edit(files[1], PixelSpacing=[0.9, 0.7])
    raises(files[0].parent, "PixelSpacing varies")
    edit(files[1], PixelSpacing=[0.9, 0.8], Rows=4, PixelData=np.zeros((4, 6), "<i2").tobytes())
    raises(files[0].parent, r"different sizes")


def test_several_series_and_stray_files(write_series, make_volume):
    files = write_series()
    (files[0].parent / "notes.txt").write_text("not DICOM")
    assert read_dicom_series(files[0].parent).spatial_shape == (6, 5, 4)  # the stray file is skipped
    raises(files[0].parent, "not a DICOM file", files=[*files, files[0].parent / "notes.txt"])
    other = write_series(make_volume(seed=3), name="other")
    copy_as_new_instance(other[0], files[0].parent / "other.dcm")
    raises(files[0].parent, "2 different series")


def test_empty_and_missing_folder(tmp_path):
    raises(tmp_path, "no DICOM image files")
    raises(tmp_path / "nowhere", "no such folder")


def test_voxel_cap(write_series):
    files = write_series()
    raises(files[0].parent, "exceeds the limit of 100", max_voxels=100)


def test_varying_rescale_gives_float32(write_series):
    files = write_series()
    edit(files[2], RescaleSlope=0.5, RescaleIntercept=-10.25)
    read = read_dicom_series(files[0].parent)
    assert read.array.dtype == np.float32
    stored = pydicom.dcmread(files[2]).pixel_array
    np.testing.assert_array_equal(read.array[0, :, :, 2], (stored * 0.5 - 10.25)[::-1].T)


# --- header-level summary ---------------------------------------------------------------------

def test_summarize_series_reads_no_pixels(write_series):
    files = write_series(modality="CT", series_description="abdomen")
    summary = summarize_series(list(reversed(files)))
    assert (summary.modality, summary.description, summary.n_slices) == ("CT", "abdomen", 4)
    assert summary.shape == (6, 5, 4) and summary.orientation == "LAS"
    np.testing.assert_allclose(summary.spacing, (0.8, 0.9, 2.5))
    assert summary.files == tuple(files)
    files[1].unlink()
    with pytest.raises(InputError, match="missing slice"):
        summarize_series([files[0], files[2], files[3]])


def test_read_dicom_header(write_series, tmp_path):
    files = write_series()
    header = read_dicom_header(files[0])
    assert "PixelData" not in header and header.Modality == "MR"
    (tmp_path / "text.dcm").write_text("hello")
    assert read_dicom_header(tmp_path / "text.dcm") is None
    assert not is_dicom_file(tmp_path / "text.dcm")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(files[0].read_bytes()[:200])
    assert is_dicom_file(broken)
    with pytest.raises(InputError, match="no data elements after its file meta"):
        read_dicom_header(broken)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(files[0].read_bytes()[:-40])  # cut inside the pixel data
    with pytest.raises(InputError, match="pixel data truncated"):
        read_dicom_series(tmp_path, files=[cut], min_slices=1)


def test_series_without_preamble(tmp_path, hand_slice):
    pixels = np.arange(12, dtype=np.int16).reshape(4, 3)
    for k in range(3):
        hand_slice(tmp_path / f"s{k}", pixels + k, (0, 0, 3.0 * k), (1, 0, 0, 0, 1, 0), (1, 1),
                   series_uid="1.2.3.7", instance=k + 1, preamble=False)
    assert (tmp_path / "s0").read_bytes()[128:132] != b"DICM"
    assert is_dicom_file(tmp_path / "s0")
    read = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(read.array[0, :, :, 2], (pixels + 2)[::-1].T)


# --- pydicom's real files ---------------------------------------------------------------------

def single(name: str, tmp_path: Path, **kwargs):
    return read_dicom_series(tmp_path, files=[get_testdata_file(name)], min_slices=1, **kwargs)


@pytest.mark.parametrize(
    "name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"],
)
def test_encodings_give_the_same_volume(name, tmp_path):
    reference = single("MR_small.dcm", tmp_path)
    other = single(name, tmp_path)
    np.testing.assert_array_equal(other.array, reference.array)
    np.testing.assert_allclose(other.affine, reference.affine)


def test_mr_small_geometry(tmp_path):
    read = single("MR_small.dcm", tmp_path)
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert read.spatial_shape == (64, 64, 1) and read.array.dtype == np.int16
    np.testing.assert_array_equal(read.array[0, :, :, 0], ds.pixel_array[::-1].T)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)  # axial, IOP [1,0,0,0,1,0], spacing 0.3125
    np.testing.assert_allclose(read.affine @ [0, 63, 0, 1], [-ipp[0], -ipp[1], ipp[2], 1], atol=1e-6)
    np.testing.assert_allclose(np.diag(read.affine)[:3], [-0.3125, 0.3125, 0.8], atol=1e-6)


def test_real_truncated_file(tmp_path):
    with pytest.raises(InputError, match="pixel data truncated"):
        single("MR_truncated.dcm", tmp_path)


@pytest.mark.skipif(get_decoder(JPEGLosslessSV1).is_available, reason="a JPEG Lossless decoder is installed here")
def test_compressed_without_installed_decoder(tmp_path):
    with pytest.raises(InputError, match="no decoder for it is installed") as caught:
        single("JPEG-LL.dcm", tmp_path)
    assert "pip install" in caught.value.hint and "pylibjpeg-libjpeg" in caught.value.hint


def test_transfer_syntax_with_no_decoder_at_all(write_series):
    files = write_series()
    explicit, private = b"1.2.840.10008.1.2.1\x00", b"1.2.826.0.1.99999.1\x00"  # same length
    for path in files:
        raw = path.read_bytes()
        path.write_bytes(raw.replace(explicit, private, 1))
    raises(files[0].parent, "pydicom cannot decode at all")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("rtstruct.dcm", "RT Structure Set Storage"),
        ("liver.dcm", "Segmentation Storage"),
        ("reportsi.dcm", "Basic Text SR"),
        ("ExplVR_LitEndNoMeta.dcm", "RT Ion Plan Storage"),  # no preamble, no file meta
        ("SC_rgb.dcm", "colour image .SamplesPerPixel=3, PhotometricInterpretation=RGB"),
        ("US1_UNCI.dcm", "ultrasound"),
        ("CT_small.dcm", "only 1 slice"),
    ],
)
def test_objects_that_are_not_ct_mr_series(name, match, tmp_path):
    with pytest.raises(InputError, match=match):
        read_dicom_series(tmp_path, files=[get_testdata_file(name)])


def test_dicomdir(tmp_path):
    dicomdir = Path(os.path.dirname(get_testdata_file("MR_small.dcm"))) / "dicomdirtests" / "DICOMDIR"
    with pytest.raises(InputError, match="DICOMDIR"):
        read_dicom_series(dicomdir)
    shutil.copy(dicomdir, tmp_path / "DICOMDIR")
    with pytest.raises(InputError, match="no DICOM image files"):  # a DICOMDIR alone is skipped
        read_dicom_series(tmp_path)


def test_real_enhanced_files():
    with pytest.raises(InputError, match="without PerFrameFunctionalGroupsSequence"):
        read_enhanced_dicom(get_testdata_file("emri_small.dcm"))  # multi-frame without plane positions
    path = get_testdata_file("eCT_Supplemental.dcm")  # 2 frames, IOP [-1,0,0,0,1,0], z -159 and -149
    with pytest.raises(InputError, match="only 2 slice"):
        read_enhanced_dicom(path)
    read = read_enhanced_dicom(path, min_slices=2)
    assert read.source.dicom["frame_numbers"] == (2, 1)  # frame 2 (z = -149) comes first along the normal
    np.testing.assert_allclose(read.affine[:3, 2], [0, 0, -10])
    stored = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(read.array[0, :, :, 0], (stored[1].astype(np.int32) - 1024)[::-1].T)


def test_enhanced_with_two_echoes(tmp_path, write_series, enhanced_from_series):
    files = write_series()
    path = enhanced_from_series(tmp_path / "echoes.dcm", [*files, *files], [0, 1, 2, 3, 4, 5, 6, 7],
                                echo_times=[10, 10, 10, 10, 20, 20, 20, 20])
    with pytest.raises(InputError, match="4D / multi-echo.*EffectiveEchoTime"):
        read_enhanced_dicom(path)
