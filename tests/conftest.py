"""Shared pytest fixtures: small DICOM series written with medseg's writer or by hand with pydicom."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.io.dicom_export import write_dicom_series
from medseg.types import Volume

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"


def _image_module(ds: Dataset, pixels: np.ndarray) -> None:
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()


def _hand_slice(
    path: Path,
    pixels: np.ndarray,
    position: Sequence[float],
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    *,
    series_uid: str,
    instance: int,
    preamble: bool = True,
) -> Path:
    """One MR slice: pixels (Rows, Columns) int16 with the given plane tags (LPS).

    ``preamble=False`` writes a bare implicit-VR dataset without preamble or file meta.
    """
    ds = Dataset()
    ds.SOPClassUID = MR_IMAGE
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "MR"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.3.5"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    _image_module(ds, pixels)
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    else:
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    return path


def _enhanced_from_series(
    path: Path,
    files: Sequence[Path],
    frame_order: Sequence[int],
    *,
    echo_times: Sequence[float] | None = None,
) -> Path:
    """An Enhanced MR object whose frame f holds slice ``files[frame_order[f]]``.

    Orientation, pixel measures and rescale go to the shared functional groups; the
    position (and, with ``echo_times``, the MR echo) to each frame's groups.
    """
    slices = [pydicom.dcmread(files[n]) for n in frame_order]
    first = slices[0]
    ds = Dataset()
    ds.SOPClassUID = ENHANCED_MR_IMAGE
    ds.SOPInstanceUID = generate_uid()
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Modality", "SeriesDescription"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = len(slices)
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.SliceThickness
    transform.RescaleSlope, transform.RescaleIntercept = first.RescaleSlope, first.RescaleIntercept
    transform.RescaleType = "US"
    shared = Dataset()
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for number, item in enumerate(slices):
        position, content, group = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = item.ImagePositionPatient
        content.StackID = "1"
        content.InStackPositionNumber = int(item.InstanceNumber)
        group.PlanePositionSequence = [position]
        group.FrameContentSequence = [content]
        if echo_times is not None:
            echo = Dataset()
            echo.EffectiveEchoTime = echo_times[number]
            group.MREchoSequence = [echo]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    _image_module(ds, np.stack([s.pixel_array for s in slices]))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def affine_from(
    rotation: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float]
) -> np.ndarray:
    """A 4x4 voxel -> RAS affine: columns ``rotation[:, n] * spacing[n]``, translation ``origin``."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(rotation, dtype=float) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def make_affine() -> Callable[..., np.ndarray]:
    """``make_affine(rotation, spacing, origin)`` -> (4, 4) voxel -> RAS affine."""
    return affine_from


@pytest.fixture
def make_volume() -> Callable[..., Volume]:
    """``make_volume(shape=(6, 5, 4), affine=None, seed=0, low=-1000, high=2000)`` -> Volume
    with distinct random int16 voxels; the default affine is axial LAS (dcm2niix layout)."""

    def build(shape=(6, 5, 4), affine=None, seed=0, low=-1000, high=2000) -> Volume:
        rng = np.random.default_rng(seed)
        array = rng.integers(low, high, size=(1, *shape)).astype(np.int16)
        if affine is None:
            affine = affine_from(np.diag([-1.0, 1.0, 1.0]), (0.8, 0.9, 2.5), (10.0, -20.0, 30.0))
        return Volume(array=array, affine=np.asarray(affine, dtype=float))

    return build


@pytest.fixture
def write_series(tmp_path: Path, make_volume) -> Callable[..., list[Path]]:
    """``write_series(volume=None, name="series", **write_dicom_series_kwargs)`` -> slice files
    (k order) of a new series in ``tmp_path / name``; the default volume is ``make_volume()``."""

    def write(volume: Volume | None = None, name: str = "series", **kwargs) -> list[Path]:
        return write_dicom_series(volume if volume is not None else make_volume(), tmp_path / name, **kwargs)

    return write


@pytest.fixture
def hand_slice() -> Callable[..., Path]:
    """``hand_slice(path, pixels, position, orientation, pixel_spacing, *, series_uid, instance,
    preamble=True)``: one MR slice written with pydicom alone (independent of medseg's writer)."""
    return _hand_slice


@pytest.fixture
def enhanced_from_series() -> Callable[..., Path]:
    """``enhanced_from_series(path, files, frame_order, *, echo_times=None)``: an Enhanced MR
    object built with pydicom from single-frame slices (frame f = ``files[frame_order[f]]``)."""
    return _enhanced_from_series


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-docs``: tests that render pictures also write them to docs/."""
    parser.addoption("--update-docs", action="store_true", help="write rendered pictures to docs/")
