"""Write a Volume as a single-frame DICOM series (CT or MR Image Storage).

The series inverts the layout ``medseg.io.dicom.read_dicom_series`` uses (i = column,
j = row stored bottom-up, k ascending along the slice normal), so reading it back gives
the same affine (to DS precision, far below 1e-3 mm) and the same voxels. A volume whose
k axis runs against ``cross(row, column)`` (positive determinant, e.g. RAS) is written
with its slices in reverse k order: read back, its k axis is reversed (same voxels in
space, ``array[..., ::-1]`` and the matching affine).
"""

from __future__ import annotations

import copy
import datetime
import os
import shutil
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from medseg.errors import OutputError
from medseg.io.dicom_geometry import plane_from_affine
from medseg.io.temp_names import create_temp_dir
from medseg.types import Volume

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}
INT16_RANGE = (-32768, 32767)


def _ds(values: np.ndarray | float) -> list[DSfloat] | DSfloat:
    """Decimal strings of at most 16 characters, as precise as that allows."""
    if np.ndim(values) == 0:
        return DSfloat(float(values), auto_format=True)
    return [DSfloat(float(v) + 0.0, auto_format=True) for v in np.asarray(values).ravel()]


def _stored_values(volume: Volume, slope: float, intercept: float) -> np.ndarray:
    """(I, J, K) int16 stored values: round((value - intercept) / slope)."""
    if volume.array.shape[0] != 1:
        raise ValueError(f"write_dicom_series writes one channel, the volume has {volume.array.shape[0]}")
    if slope == 0:
        raise ValueError("rescale_slope must not be 0")
    stored = np.rint((np.asarray(volume.array[0], dtype=np.float64) - intercept) / slope)
    if stored.size and (stored.min() < INT16_RANGE[0] or stored.max() > INT16_RANGE[1]):
        raise ValueError(
            f"values {float(volume.array.min())}..{float(volume.array.max())} do not fit int16 with "
            f"rescale_slope={slope}, rescale_intercept={intercept}; choose a slope/intercept that maps them "
            "into -32768..32767"
        )
    return stored.astype(np.int16)


def _common_dataset(modality: str, description: str, patient_id: str, patient_name: str,
                    study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    """Tags shared by every slice (patient, study, series, frame of reference, pixel module)."""
    now = datetime.datetime.now()
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.Modality = modality
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL" if modality == "CT" else "OTHER"]
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.SeriesDescription = description
    ds.Manufacturer = "medseg"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if modality == "CT":
        ds.KVP = ""
    else:
        ds.ScanningSequence = "RM"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime = ""
        ds.RepetitionTime = ""
        ds.EchoTrainLength = ""
    return ds


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    modality: str = "MR",
    series_description: str = "",
    patient_id: str = "ANON",
    patient_name: str = "ANON",
    study_uid: str | None = None,
    series_uid: str | None = None,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
) -> list[Path]:
    """Write ``volume`` as int16 single-frame slices ``slice_0001.dcm``... in ``folder``.

    Files are written into a temporary sibling folder, which is renamed to ``folder``
    only when every slice is written, so a failure never leaves a partial series.

    Args:
        volume: one channel, array (1, I, J, K) with an orthogonal (unsheared) affine.
        folder: the series folder to create; it must not exist or be empty.
        modality: ``"CT"`` (CT Image Storage) or ``"MR"`` (MR Image Storage).
        series_description: SeriesDescription.
        patient_id, patient_name: written to the headers only, never to file names.
        study_uid, series_uid: reuse these UIDs (new ones are generated when None).
        rescale_slope, rescale_intercept: value = stored * slope + intercept; stored values
            are rounded to int16 (a ValueError says when they do not fit).

    Returns:
        The slice files in k order of the volume read back (InstanceNumber order).

    Raises:
        ValueError: several channels, an unknown modality, a sheared affine, values out of range.
        OutputError: ``folder`` exists and is not empty, or cannot be written.
    """
    if modality not in SOP_CLASSES:
        raise ValueError(f"modality must be one of {sorted(SOP_CLASSES)}, got {modality!r}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError(f"{folder}: exists and is not an empty folder; choose a new folder for the series")
    stored = _stored_values(volume, rescale_slope, rescale_intercept)
    n_columns, n_rows, n_slices = stored.shape
    plane = plane_from_affine(volume.affine, stored.shape)
    normal = np.cross(plane.row_cosine, plane.column_cosine)
    common = _common_dataset(
        modality, series_description, patient_id, patient_name,
        study_uid or generate_uid(), series_uid or generate_uid(), generate_uid(),
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = create_temp_dir(folder.parent, folder.name, ".partial")  # umask permissions; renamed when done
    try:
        names = []
        for number in range(n_slices):
            k = n_slices - 1 - number if plane.reverse_k else number
            position = plane.positions[number]
            ds = copy.deepcopy(common)
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = number + 1
            ds.ImagePositionPatient = _ds(position)
            ds.ImageOrientationPatient = _ds(np.concatenate([plane.row_cosine, plane.column_cosine]))
            ds.SliceLocation = _ds(float(position @ normal))
            ds.PixelSpacing = _ds(np.array(plane.pixel_spacing))
            ds.SliceThickness = _ds(plane.slice_spacing)
            ds.SpacingBetweenSlices = _ds(plane.slice_spacing)
            ds.Rows, ds.Columns = n_rows, n_columns
            ds.RescaleSlope = _ds(rescale_slope)
            ds.RescaleIntercept = _ds(rescale_intercept)
            if modality == "CT":
                ds.RescaleType = "HU"
            # DICOM row r is j = Rows - 1 - r; column c is i.
            pixels = np.ascontiguousarray(stored[:, ::-1, k].T)
            ds.PixelData = pixels.astype("<i2").tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            name = f"slice_{number + 1:04d}.dcm"
            ds.save_as(temp / name, enforce_file_format=True)
            names.append(name)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(temp, folder)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise OutputError(f"{folder}: DICOM series could not be written ({error})") from error
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return [folder / name for name in names]
