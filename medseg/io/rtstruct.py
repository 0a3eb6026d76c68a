"""RT Structure Set export: a label map as closed planar contours referencing its source DICOM series.

Why not a library: highdicom builds SEG, SR and parametric maps but no RT Structure Set; rt-utils
does, but it depends on ``opencv-python`` (the GUI build: ~90 MB and libGL on a headless server, and
it clashes with ``opencv-python-headless``). So the contours come from scikit-image's marching squares
(``skimage.measure.find_contours``, a core dependency for this) and the object is written with pydicom,
module by module (Patient, General Study, RT Series, General Equipment, Structure Set, ROI Contour,
RT ROI Observations, SOP Common).

Geometry: the label array (I, J, K) follows ``medseg.io.dicom``'s layout (i = column, j = row stored
bottom-up, k = ``source.files`` order), so slice k's plane in DICOM row/column order is
``labels[:, ::-1, k].T`` (as in ``medseg.io.dicomseg``). Each structure's plane is padded by one
background pixel and contoured at level 0.5: the contour runs half-way between pixel centres inside
and outside, so every contour is closed, and a point-in-polygon test on pixel centres gives the mask
back (except at one-pixel saddles). Contour point (row r, column c) of slice k lies at
``ImagePositionPatient + c * PixelSpacing[1] * row_cosine + r * PixelSpacing[0] * column_cosine``
(LPS mm, IOP's first triplet is the row direction). Holes are separate contours on the same plane:
readers combine contours of one plane by even-odd (XOR), the common convention (e.g. plastimatch,
rt-utils's own reader). Collinear points are dropped (``approximate_polygon``, 0.05 pixel tolerance).

Only single-frame series: an enhanced multi-frame source is refused (its DICOM-SEG covers it).
Patient and study attributes are copied from the source, as the IOD requires; nothing identifying
is added (operator, device and institution fields hold "medseg" or stay empty).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.errors import InputError
from medseg.io.atomic import atomic_path, output_error
from medseg.io.redact import library_error
from medseg.types import LabelVolume, Volume

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"  # RTReferencedStudySequence's SOP class, by convention
_PATIENT_STUDY_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                       "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Distinct display colours (RGB) per structure, cycled.
_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))


def plane_contours(plane: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a binary plane.

    Args:
        plane: (Rows, Columns) bool.

    Returns:
        One (N, 2) float array of (row, column) pixel coordinates per contour, not repeating the first
        point at the end; holes are contours too (combine by even-odd).
    """
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(np.asarray(plane, dtype=np.float32), 1)
    contours = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance=0.05) - 1.0  # undo the padding
        if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
            contour = contour[:-1]
        if len(contour) >= 3:
            contours.append(contour)
    return contours


def write_rtstruct(
    labels: LabelVolume | np.ndarray,
    path: str | Path,
    reference: Volume,
    class_names: Sequence[str],
    *,
    series_description: str = "medseg structures",
    label: str = "medseg",
) -> Path:
    """Write ``labels`` as an RT Structure Set referencing ``reference``'s series, one ROI per class.

    Args:
        labels: (I, J, K) integer labels on ``reference``'s grid (0 = background).
        path: the output file (its folder is created); written atomically.
        reference: the source series as read by ``medseg.io.read_scan`` (``source.files`` in k order).
        class_names: names of labels 0..N; ROI n (n >= 1) is label n, named ``class_names[n]``.
            Classes absent from this case get an ROI without contours.
        series_description: the RTSTRUCT series' description.
        label: StructureSetLabel (16 characters at most; nothing identifying).

    Returns:
        The path written.

    Raises:
        InputError: the reference is not a single-frame DICOM series, the labels are off its grid or beyond
            the class names, or the source files changed since they were read.
        OutputError: the file cannot be written.
    """
    path = Path(path)
    source = reference.source
    if source.format != "dicom-series" or not source.files:
        raise InputError(source.path or "(in memory)",
                         f"an RT Structure Set needs a single-frame DICOM series as its source; this scan is "
                         f"{source.format}", "use --rtstruct only with DICOM input (NIfTI labels are written anyway)")
    array = _labels(labels, reference, path, len(class_names))
    headers = _source_headers(reference)
    rois = []
    for number in range(1, len(class_names)):
        contours = []
        for k, header in enumerate(headers):
            plane = number == array[:, ::-1, k].T  # (Rows, Columns), rows top-down
            if plane.any():
                contours.extend((header, _to_patient(contour, header)) for contour in plane_contours(plane))
        rois.append((number, str(class_names[number])[:64], contours))
    dataset = _structure_set(headers, rois, series_description, label)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error) from error
    with atomic_path(path) as temp:
        dataset.save_as(temp, enforce_file_format=True)
    return path


def _labels(labels: LabelVolume | np.ndarray, reference: Volume, path: Path, n_classes: int) -> np.ndarray:
    """(I, J, K) integer labels, checked against the reference grid and the class count."""
    array = np.asarray(labels.array if isinstance(labels, LabelVolume) else labels)
    if array.shape != reference.spatial_shape:
        raise InputError(path, f"label shape {array.shape} does not match the series grid {reference.spatial_shape}",
                         "predict on the source series' grid")
    if isinstance(labels, LabelVolume) and not np.allclose(labels.affine, reference.affine, atol=1e-3):
        raise InputError(path, "the labels' affine differs from that of the series", "labels must be on its grid")
    if n_classes < 2:
        raise InputError(path, "an RT Structure Set needs at least one foreground class name", "give 0..N names")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise InputError(path, f"label values {array.min()}..{array.max()} outside 0..{n_classes - 1}",
                         "give one class name per label value, background first")
    return array


def _source_headers(reference: Volume) -> list[Dataset]:
    """The source slices' headers (no pixels), in k order, checked against the SOPInstanceUIDs read."""
    headers = []
    for file in reference.source.files:
        try:
            headers.append(pydicom.dcmread(file, stop_before_pixels=True))
        except Exception as error:  # noqa: BLE001 - any parser failure: the file changed since it was read
            raise InputError(file, f"the source file cannot be read again ({library_error(error)})",
                             "the series changed since it was read; read it again") from None
    expected = tuple(reference.source.dicom.get("sop_instance_uids", ()))
    if expected and tuple(str(h.SOPInstanceUID) for h in headers) != expected:
        raise InputError(reference.source.path, "the source files' SOPInstanceUIDs differ from those read",
                         "the series changed since it was read; read it again")
    return headers


def _to_patient(contour: np.ndarray, header: Dataset) -> np.ndarray:
    """(N, 2) (row, column) pixel coordinates of a slice -> (N, 3) LPS mm."""
    orientation = np.asarray([float(v) for v in header.ImageOrientationPatient])
    spacing = [float(v) for v in header.PixelSpacing]  # (between rows, between columns)
    origin = np.asarray([float(v) for v in header.ImagePositionPatient])
    return (origin + np.outer(contour[:, 1] * spacing[1], orientation[:3])
            + np.outer(contour[:, 0] * spacing[0], orientation[3:]))


def _reference_item(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item


def _structure_set(headers: Sequence[Dataset], rois: Sequence[tuple[int, str, list[tuple[Dataset, np.ndarray]]]],
                   series_description: str, label: str) -> Dataset:
    """The RT Structure Set dataset (new series in the source's study)."""
    from medseg import __version__  # local: medseg/__init__ may import io

    first = headers[0]
    now = datetime.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = first.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for keyword in _PATIENT_STUDY_TAGS:  # Patient and General Study modules (type 2: present, maybe empty)
        setattr(ds, keyword, first.get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(first.get("SeriesNumber") or 0) + 2000
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "medseg"
    ds.ManufacturerModelName = "medseg"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S")
    frame_uid = str(first.get("FrameOfReferenceUID", ""))
    ds.FrameOfReferenceUID = frame_uid  # Frame of Reference module (the source's)
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = DicomSequence([_reference_item(h) for h in headers])
    study = Dataset()
    study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    ds.StructureSetROISequence = DicomSequence()
    ds.ROIContourSequence = DicomSequence()
    ds.RTROIObservationsSequence = DicomSequence()
    for index, (number, name, contours) in enumerate(rois):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        ds.StructureSetROISequence.append(roi)
        contour_roi = Dataset()
        contour_roi.ReferencedROINumber = number
        contour_roi.ROIDisplayColor = list(_COLOURS[index % len(_COLOURS)])
        if contours:  # an empty ContourSequence is invalid: an absent structure has none
            contour_roi.ContourSequence = DicomSequence([_contour_item(header, points) for header, points in contours])
        ds.ROIContourSequence.append(contour_roi)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    return ds


def _contour_item(header: Dataset, points: np.ndarray) -> Dataset:
    item = Dataset()
    item.ContourImageSequence = DicomSequence([_reference_item(header)])
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(points)
    item.ContourData = [f"{value:.4f}".rstrip("0").rstrip(".") for value in points.ravel()]
    return item
