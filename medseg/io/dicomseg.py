"""DICOM-SEG export (highdicom): a label map as a BINARY Segmentation referencing its source series.

Segments: one per non-background class name, segment number = label value (so a
reader maps segment n back to medseg label n), including classes absent from this
case (they have no frames). Each segment is coded generically (category and type
SNOMED CT "Tissue", 85756007) with the class name as its label, and identified as
AUTOMATIC, produced by the named algorithm (family DCM "Artificial Intelligence"); a
reader's correction of a model's mask is SEMIAUTOMATIC with the model as that algorithm
(``algorithm_type``), described in ContentDescription.

Geometry: the SEG's frames are on the source images' planes. medseg's label array
(I, J, K) follows ``medseg.io.dicom``'s layout (i = column, j = row stored bottom-up,
k = ``source.files`` order), so the frame for source slice k is
``labels[:, ::-1, k].T`` (rows top-down, as DICOM stores them), the inverse of the
reader's ``pixels[::-1, :].T``. For an enhanced multi-frame source, slice k is frame
``source.dicom["frame_numbers"][k]``.

Patient and study modules are copied from the source by highdicom (the standard requires
them); nothing identifying is added: content creator, device and institution fields hold
only "medseg".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medseg.errors import InputError
from medseg.io.dicom_headers import check_transfer_syntax
from medseg.io.redact import library_error
from medseg.io.atomic import atomic_path, output_error
from medseg.types import LabelVolume, Volume

DICOM_FORMATS = ("dicom-series", "dicom-enhanced")


def _label_array(labels: LabelVolume | np.ndarray, reference: Volume, path: Path, n_classes: int) -> np.ndarray:
    """(I, J, K) uint8/uint16 labels, checked against the reference grid and the class count."""
    array = np.asarray(labels.array if isinstance(labels, LabelVolume) else labels)
    if array.shape != reference.spatial_shape:
        raise InputError(path, f"label shape {array.shape} does not match the series grid {reference.spatial_shape} "
                         f"of {reference.source.path}", "predict on the source series' grid")
    if isinstance(labels, LabelVolume) and not np.allclose(labels.affine, reference.affine, atol=1e-3):
        raise InputError(path, f"the labels' affine differs from that of the series {reference.source.path}",
                         "labels must be on the source series' grid")
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
        raise InputError(path, f"labels must be integers, got {array.dtype}", "take the argmax first")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise InputError(path, f"label values {array.min()}..{array.max()} outside 0..{n_classes - 1} "
                         f"({n_classes} class names)", "give one class name per label value, background first")
    return array.astype(np.uint8 if n_classes <= 256 else np.uint16)


def _source_datasets(reference: Volume) -> list[pydicom.Dataset]:
    """The source image datasets (full, pixels included: highdicom checks them), checked against the UIDs."""
    source = reference.source
    if source.format not in DICOM_FORMATS or not source.files:
        raise InputError(
            source.path or "(in memory)", f"a DICOM-SEG needs a DICOM source; this scan is {source.format}",
            "read the scan with medseg.io.read_scan from its DICOM series folder",
        )
    datasets = []
    for path in source.files:
        try:
            check_transfer_syntax(Path(path))
            datasets.append(pydicom.dcmread(path))
        except InputError:
            raise
        except Exception as error:  # noqa: BLE001 - any parser failure: the file changed since it was read
            raise InputError(path, f"the source file cannot be read again ({library_error(error)})",
                             "the series changed since it was read; read it again") from None
    expected = source.dicom.get("sop_instance_uids", ())
    found = tuple(str(d.SOPInstanceUID) for d in datasets)
    if expected and found != tuple(expected):
        raise InputError(source.path, "the source files' SOPInstanceUIDs differ from those read",
                         "the series changed since it was read; read it again")
    return datasets


def _frames(array: np.ndarray, reference: Volume, datasets: Sequence[pydicom.Dataset]) -> np.ndarray:
    """(frames, Rows, Columns) label frames in the source's frame order."""
    planes = np.ascontiguousarray(array[:, ::-1, :].transpose(2, 1, 0))  # (K, Rows, Columns), rows top-down
    if reference.source.format == "dicom-series":
        return planes
    numbers = reference.source.dicom["frame_numbers"]
    frames = np.zeros((int(datasets[0].NumberOfFrames),) + planes.shape[1:], dtype=planes.dtype)
    for k, number in enumerate(numbers):
        frames[int(number) - 1] = planes[k]
    return frames


def write_dicom_seg(
    labels: LabelVolume | np.ndarray,
    path: str | Path,
    reference: Volume,
    class_names: Sequence[str],
    *,
    algorithm_name: str = "medseg",
    algorithm_version: str = "",
    series_description: str = "medseg segmentation",
    algorithm_type: str = "AUTOMATIC",
    content_description: str = "",
) -> Path:
    """Write ``labels`` as a DICOM Segmentation (BINARY) referencing ``reference``'s series.

    Args:
        labels: (I, J, K) integer labels on ``reference``'s grid (0 = background).
        path: the output file (its folder is created); written atomically.
        reference: the source scan as read by ``medseg.io.read_scan`` from DICOM (its
            ``source.files`` and ``source.dicom`` locate and identify the images).
        class_names: names of labels 0..N; segments 1..N get names 1..N.
        algorithm_name, algorithm_version: the algorithm identification of every segment.
        series_description: the SEG series' description.
        algorithm_type: SegmentAlgorithmType of every segment: ``"AUTOMATIC"`` (the model's output)
            or ``"SEMIAUTOMATIC"`` (a reader corrected it; the algorithm is the model it started from).
        content_description: ContentDescription (64 characters at most; nothing identifying).

    Returns:
        The path written.

    Raises:
        InputError: a non-DICOM reference, labels off its grid or beyond the class names,
            or source files that changed since they were read.
        OutputError: the file cannot be written.
    """
    from medseg import __version__  # local: medseg/__init__ may import io

    path = Path(path)
    if len(class_names) < 2:
        raise InputError(path, "a DICOM-SEG needs at least one foreground class name", "give background and 1..N")
    if algorithm_type not in ("AUTOMATIC", "SEMIAUTOMATIC"):
        raise InputError(path, f"unknown segment algorithm type {algorithm_type!r}", "use AUTOMATIC or SEMIAUTOMATIC")
    array = _label_array(labels, reference, path, len(class_names))
    datasets = _source_datasets(reference)
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence,
        version=algorithm_version or __version__,
    )
    segments = [
        highdicom.seg.SegmentDescription(
            segment_number=number,
            segment_label=str(name)[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues[algorithm_type],
            algorithm_identification=algorithm,
        )
        for number, name in enumerate(class_names) if number > 0
    ]
    try:
        with warnings.catch_warnings():
            # highdicom warns about single-component person names, quoting the patient's name:
            # medseg never lets a patient identifier into logs.
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
            segmentation = _segmentation(datasets, _frames(array, reference, datasets), segments,
                                         algorithm_name, algorithm_version or __version__, series_description,
                                         content_description)
    except (AttributeError, ValueError, TypeError) as error:
        # highdicom's messages can quote tag values (names, IDs): only the type and the tag go on.
        raise InputError(reference.source.path,
                         f"highdicom cannot build a DICOM-SEG on this series ({library_error(error)})",
                         "the source images lack attributes the SEG must copy (patient, study, geometry); "
                         "write NIfTI labels instead") from error
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error) from error
    with atomic_path(path) as temp:
        segmentation.save_as(temp)
    return path


def _segmentation(datasets: Sequence[pydicom.Dataset], frames: np.ndarray,
                  segments: Sequence[highdicom.seg.SegmentDescription], algorithm_name: str, version: str,
                  series_description: str, content_description: str = "") -> highdicom.seg.Segmentation:
    """The highdicom Segmentation object (BINARY, new series in the source's study)."""
    return highdicom.seg.Segmentation(
        source_images=datasets,
        pixel_array=frames,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        series_instance_uid=highdicom.UID(),
        series_number=int(datasets[0].get("SeriesNumber") or 0) + 1000,
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name=algorithm_name,
        software_versions=version,
        device_serial_number="medseg",
        series_description=series_description,
        content_description=content_description[:64] or None,
    )
