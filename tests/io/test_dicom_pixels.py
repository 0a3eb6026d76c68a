"""The direct pixel path of the series reader gives exactly what pydicom's decoding gave, and headers are read once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ImplicitVRLittleEndian

from medseg.io import dicom as dicom_module
from medseg.io import dicom_checks
from medseg.io import dicom_headers
from medseg.io.dicom import read_dicom_series
from medseg.io.read import read_scan

DCMREAD = pydicom.dcmread  # the original, for reference reads while a test counts the reader's calls


def reference(files: list[Path]) -> np.ndarray:
    """The earlier reader: pydicom decode, Modality LUT in float64, float32 volume, int16 when every value is whole."""
    slices = []
    for path in files:
        dataset = DCMREAD(path)
        slices.append(np.asarray(apply_modality_lut(dataset.pixel_array, dataset), dtype=np.float32)[::-1].T)
    values = np.stack(slices, axis=-1)
    if np.all(values == np.round(values)) and values.min() >= -32768 and values.max() <= 32767:
        values = values.astype(np.int16)
    return values


def rewrite(path: Path, raw: np.ndarray | None = None, implicit: bool = False, **tags: object) -> None:
    dataset = DCMREAD(path)
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    if raw is not None:
        dataset.PixelData = raw.astype(raw.dtype.newbyteorder("<")).tobytes()
    if implicit:
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True, implicit_vr=implicit or None,
                    little_endian=True if implicit else None)


def variant(files: list[Path], name: str) -> None:
    rng = np.random.default_rng(1)
    for k, path in enumerate(files):
        shape = (5, 6)  # Rows x Columns of make_volume's (6, 5, 4)
        if name == "unsigned 12 bits, high bits set, intercept -1024":
            raw = rng.integers(0, 65536, size=shape).astype(np.uint16)
            rewrite(path, raw, BitsStored=12, HighBit=11, PixelRepresentation=0, RescaleIntercept=-1024,
                    RescaleSlope=1)
        elif name == "signed 12 bits, high bits set":
            raw = rng.integers(-32768, 32768, size=shape).astype(np.int16)
            rewrite(path, raw, BitsStored=12, HighBit=11, PixelRepresentation=1)
        elif name == "slope 0.1":
            rewrite(path, RescaleSlope=0.1, RescaleIntercept=0)
        elif name == "slope 0.5 on one slice" and k == 2:
            rewrite(path, RescaleSlope=0.5, RescaleIntercept=-10.25)
        elif name == "unsigned beyond int16":
            raw = rng.integers(0, 65536, size=shape).astype(np.uint16)
            raw[0, 0] = 65535
            rewrite(path, raw, BitsStored=16, HighBit=15, PixelRepresentation=0, RescaleIntercept=0, RescaleSlope=1)
        elif name == "implicit VR":
            rewrite(path, implicit=True)
        elif name == "8 bits, slope 2":
            raw = rng.integers(0, 256, size=shape).astype(np.uint8)
            rewrite(path, raw, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0, RescaleSlope=2,
                    RescaleIntercept=-100)


VARIANTS = ["plain", "unsigned 12 bits, high bits set, intercept -1024", "signed 12 bits, high bits set",
            "slope 0.1", "slope 0.5 on one slice", "unsigned beyond int16", "implicit VR", "8 bits, slope 2"]


@pytest.mark.parametrize("name", VARIANTS)
def test_direct_path_equals_pydicom_decoding(write_series, monkeypatch, name):
    files = write_series(modality="CT")
    variant(files, name)
    expected = reference(files)

    def no_fallback(path, size):
        raise AssertionError(f"{path.name} went through pydicom's decoding")

    monkeypatch.setattr(dicom_module, "_decoded_slice", no_fallback)  # every slice must take the direct path
    read = read_dicom_series(files[0].parent)
    assert read.array.dtype == expected.dtype, name
    np.testing.assert_array_equal(read.array[0], expected)
    assert read.array.strides[1:] == (expected.itemsize, 6 * expected.itemsize, 30 * expected.itemsize)
    if name == "plain":
        assert read.array.dtype == np.int16
    if name in ("slope 0.1", "unsigned beyond int16"):
        assert read.array.dtype == np.float32


def test_unexpected_files_go_through_pydicom(write_series, monkeypatch):
    """A pixel length unlike the header's: pydicom reads that slice; an element after the pixel data is harmless."""
    files = write_series()
    expected = reference(files)
    dataset = pydicom.dcmread(files[1])
    dataset.add_new(0xFFFCFFFC, "OB", b"\0" * 8)  # data set trailing padding after PixelData
    dataset.save_as(files[1])
    dataset = pydicom.dcmread(files[3])
    dataset.PixelData = dataset.PixelData + b"\0\0"  # one value too many
    dataset.save_as(files[3])
    used: list[str] = []
    original = dicom_module._decoded_slice

    def counted(path, size):
        used.append(path.name)
        return original(path, size)

    monkeypatch.setattr(dicom_module, "_decoded_slice", counted)
    read = read_dicom_series(files[0].parent)
    np.testing.assert_array_equal(read.array[0], expected)
    assert used == [files[3].name]


def test_headers_are_parsed_once_from_discovery_to_pixels(write_series, monkeypatch):
    files = write_series()
    dicom_headers.clear_header_cache()
    calls: list[object] = []
    original = pydicom.dcmread

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(dicom_headers.pydicom, "dcmread", counted)
    read = read_scan(files[0].parent)  # discovery, then the series reader
    assert len(calls) == len(files)
    np.testing.assert_array_equal(read.array[0], reference(files))
    rewrite(files[0], RescaleIntercept=5)  # a changed file is parsed again
    before = len(calls)
    read = read_scan(files[0].parent)
    assert len(calls) == before + 1
    np.testing.assert_array_equal(read.array[0], reference(files))


def test_a_series_is_checked_once_from_discovery_to_pixels(write_series, monkeypatch):
    files = write_series()
    dicom_headers.clear_header_cache()
    checked: list[str] = []
    original = dicom_checks.check_image_object

    def counted(path, dataset):
        checked.append(Path(path).name)
        return original(path, dataset)

    monkeypatch.setattr(dicom_checks, "check_image_object", counted)
    read_scan(files[0].parent)  # discovery checks the series, the reader reuses that result
    assert len(checked) == len(files)
    rewrite(files[2], InstanceNumber=99)  # a changed file: a new header object, the whole series checked again
    read_scan(files[0].parent)
    assert len(checked) == 2 * len(files)


def test_the_transfer_syntax_scan_agrees_with_pydicom_on_its_test_files():
    bundled = Path(pydicom.__file__).parent / "data" / "test_files"  # in pydicom's wheel (get_testdata_files downloads)
    part10 = [path for path in sorted(bundled.rglob("*.dcm")) if dicom_headers.dicom_prefix(path) == "part10"]
    assert len(part10) > 50
    scanned = 0
    for path in part10:
        got = dicom_headers._scanned_transfer_syntax(path)
        if got is None:
            continue  # unusual meta: pydicom parses it
        scanned += 1
        assert got == str(pydicom.filereader.read_file_meta_info(path).get("TransferSyntaxUID", "")), path.name
    assert scanned >= 0.9 * len(part10)
