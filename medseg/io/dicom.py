"""Read DICOM image series and enhanced multi-frame objects into ``Volume``.

Axes and affine (identical to dcm2niix's default output, so the affine matches the
NIfTI that ``dcm2niix`` writes for the same series to well under 1e-3 mm):

* ``array`` is (1, I, J, K) with ``i`` = DICOM column index, ``j`` = DICOM row index
  stored bottom-up (``j = Rows - 1 - r``, dcm2niix ``nii_flipY``), ``k`` = slice;
* ``affine`` maps (i, j, k, 1) to RAS+ mm: LPS columns ``row_cosine * PixelSpacing[1]``,
  ``-column_cosine * PixelSpacing[0]``, ``normal * slice_spacing``, then ``LPS_TO_RAS``
  (see ``medseg.io.dicom_geometry``);
* slices are sorted by their position along ``normal = cross(row_cosine, column_cosine)``,
  ascending, whatever their InstanceNumber order. Checked against the dcm2niix binary
  (v1.0.20260724, default options) on axial, sagittal, coronal and oblique series, with
  InstanceNumber rising or falling along the normal: affines agree to 2e-6 mm and voxels
  exactly (tests/io/test_dicom_geometry.py runs this when dcm2niix is installed). One known
  difference: dcm2niix reorients MRAcquisitionType "3D" series to the nearest canonical
  axes (``nii_setOrtho``); medseg keeps the acquired layout (same voxels in space);
* the slice spacing is the distance along the normal between the first and last
  slices over K - 1 (after the evenness check), not SliceThickness.

Intensities: the Modality LUT (RescaleSlope/Intercept, or a Modality LUT Sequence) is
applied, so CT is in HU; the array is int16 when every value is an integer in int16
range, else float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.dicom_checks import MIN_SLICES, StackGeometry, check_series_files, check_stack
from medseg.io.dicom_headers import (
    PARSE_ERRORS,
    check_transfer_syntax,
    dicom_prefix,
    frame_headers,
    functional_group,
    read_dicom_header,
    read_header_and_offset,
)
from medseg.io.dicom_objects import (
    DICOMDIR_SOP_CLASS,
    check_image_object,
    check_pixel_length,
)
from medseg.io.dicom_pixels import stack_slices
from medseg.io.redact import library_error
from medseg.types import SourceInfo, Volume

__all__ = ["is_dicom_file", "read_dicom_header", "read_dicom_series", "read_enhanced_dicom"]

LOGGER = logging.getLogger(__name__)
DECODE_HINT = "copy the file again, or convert it to uncompressed DICOM (e.g. gdcmconv --raw)"


def is_dicom_file(path: str | Path) -> bool:
    """True for a DICOM file: 128-byte preamble + ``DICM``, or a preamble-less file whose header parses."""
    path = Path(path)
    kind = dicom_prefix(path) if path.is_file() else None
    if kind == "part10":
        return True
    if kind == "raw":
        return read_dicom_header(path) is not None
    return False


def _is_dicomdir(dataset: Dataset) -> bool:
    meta = getattr(dataset, "file_meta", None)
    return "DirectoryRecordSequence" in dataset or (
        meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS
    )


def _folder_headers(folder: Path) -> tuple[list[Path], list[Dataset], list[int | None]]:
    """The DICOM files directly in ``folder`` (not subfolders), their headers and PixelData offsets;
    others are skipped."""
    if not folder.is_dir():
        raise InputError(folder, "no such folder", "give the folder that holds the DICOM slice files")
    files, datasets, offsets = [], [], []
    skipped = {"not DICOM": 0, "DICOMDIR index": 0}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        dataset, offset = read_header_and_offset(path)
        if dataset is None:
            skipped["not DICOM"] += 1
        elif _is_dicomdir(dataset):
            skipped["DICOMDIR index"] += 1
        else:
            files.append(path)
            datasets.append(dataset)
            offsets.append(offset)
    for reason, count in skipped.items():
        if count:  # counted, not named: file names beside DICOM may identify the patient
            LOGGER.info("skipped %d file(s): %s", count, reason)
    if not files:
        raise InputError(folder, "no DICOM image files in this folder",
                         "give the folder that directly holds the slice files (subfolders are not searched)")
    return files, datasets, offsets


def _read_full(path: Path) -> Dataset:
    """The whole dataset, pixels included; a file without file meta gets the transfer
    syntax it was parsed with, so pydicom can decode its pixels."""
    kind = dicom_prefix(path)
    try:
        if kind == "part10":
            check_transfer_syntax(path)
        dataset = pydicom.dcmread(path, force=kind == "raw")
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the parser raises, it is this file's problem
        raise InputError(path, f"DICOM file cannot be read ({library_error(error)})",
                         "the file is damaged or truncated; copy it again from the source") from None
    meta = getattr(dataset, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = dataset.original_encoding
        if meta is None:
            dataset.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return dataset


def _stored_pixels(path: Path, dataset: Dataset) -> np.ndarray:
    """Decoded stored values: (Rows, Columns) or (frames, Rows, Columns)."""
    check_pixel_length(path, dataset)
    try:
        return dataset.pixel_array
    except (*PARSE_ERRORS, RuntimeError, AttributeError) as error:
        raise InputError(path, f"pixel data cannot be decoded ({library_error(error)})", DECODE_HINT) from None


def check_voxels(where: Path, shape: tuple[int, int, int], max_voxels: int | None) -> None:
    """InputError when ``shape`` holds more than ``max_voxels`` voxels (checked before allocating)."""
    _check_voxels(where, shape, max_voxels)


def _check_voxels(where: Path, shape: tuple[int, int, int], max_voxels: int | None) -> None:
    n_voxels = shape[0] * shape[1] * shape[2]
    if max_voxels is not None and n_voxels > max_voxels:
        raise InputError(where, f"{shape} = {n_voxels} voxels exceeds the limit of {max_voxels}",
                         "raise max_voxels if the machine has the memory, or crop the series")


def _finish(values: np.ndarray) -> np.ndarray:
    """(I, J, K) float32 -> (1, I, J, K), int16 when that is exact."""
    if values.size and np.all(values == np.round(values)) and values.min() >= -32768 and values.max() <= 32767:
        values = values.astype(np.int16)
    return values[np.newaxis]


def _dicom_ids(dataset: Dataset, sop_instance_uids: Sequence[str]) -> dict[str, object]:
    return {
        "StudyInstanceUID": str(dataset.get("StudyInstanceUID", "")),
        "SeriesInstanceUID": str(dataset.get("SeriesInstanceUID", "")),
        "FrameOfReferenceUID": str(dataset.get("FrameOfReferenceUID", "")),
        "sop_instance_uids": tuple(sop_instance_uids),
        "sop_class_uid": str(dataset.get("SOPClassUID", "")),
        "flip_rows": True,
    }


def read_dicom_series(
    folder: str | Path,
    files: Sequence[str | Path] | None = None,
    *,
    min_slices: int = MIN_SLICES,
    max_voxels: int | None = DEFAULT_MAX_VOXELS,
) -> Volume:
    """Read one checked DICOM series (single-frame CT/MR slices) into a Volume.

    Args:
        folder: the series folder (named in errors); its files are used when ``files`` is None
            (non-DICOM files and DICOMDIR indexes are skipped, subfolders are not searched).
            A single enhanced multi-frame file (or a folder holding only one) is read with
            ``read_enhanced_dicom``.
        files: the slice files of the series, any order; every one must be a DICOM image.
        min_slices: fewer slices raise InputError.
        max_voxels: raise InputError before allocating more voxels than this.

    Returns:
        Volume with array (1, I, J, K) (int16 or float32, Modality LUT applied) and the
        dcm2niix-convention affine described in this module's docstring; ``source.files``
        and ``source.dicom["sop_instance_uids"]`` are in k order.

    Raises:
        InputError: any failed check of ``medseg.io.dicom_checks`` or an undecodable file.
    """
    folder = Path(folder)
    if files is None and folder.is_file():
        files = [folder]
    if files is None:
        paths, datasets, offsets = _folder_headers(folder)
    else:
        paths = [Path(f) for f in files]
        pairs = [read_header_and_offset(p) for p in paths]
        datasets, offsets = [dataset for dataset, _ in pairs], [offset for _, offset in pairs]
    if len(paths) == 1 and datasets[0] is not None and int(datasets[0].get("NumberOfFrames") or 1) > 1:
        return read_enhanced_dicom(paths[0], min_slices=min_slices, max_voxels=max_voxels)
    checked = check_series_files(folder, paths, datasets, min_slices=min_slices)
    shape = checked.geometry.shape
    _check_voxels(folder, shape, max_voxels)
    offset_of = dict(zip(paths, offsets))
    values = stack_slices(checked.files, checked.datasets, [offset_of.get(p) for p in checked.files],
                          shape[1], shape[0], lambda path: _decoded_slice(path, (shape[1], shape[0])))
    first = checked.datasets[0]
    source = SourceInfo(
        path=str(folder),
        format="dicom-series",
        modality=str(first.get("Modality", "")),
        description=str(first.get("SeriesDescription", "")),
        files=tuple(str(p) for p in checked.files),
        dicom=_dicom_ids(first, [str(d.get("SOPInstanceUID", "")) for d in checked.datasets]),
    )
    return Volume(array=values[np.newaxis], affine=checked.geometry.affine, source=source)


def _decoded_slice(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One slice decoded by pydicom and rescaled (Modality LUT), (Rows, Columns): the path for anything
    ``medseg.io.dicom_pixels`` does not read directly, with every check of the file."""
    dataset = _read_full(path)
    stored = _stored_pixels(path, dataset)
    if stored.shape != size:
        raise InputError(path, f"pixel array {stored.shape} does not match Rows x Columns {size}",
                         "the file is inconsistent; export the series again")
    if "PerFrameFunctionalGroupsSequence" in dataset:  # one-frame enhanced object
        slope, intercept = _frame_rescale(dataset, 0)
        return stored.astype(np.float64) * slope + intercept
    return np.asarray(apply_modality_lut(stored, dataset))


def _frame_rescale(dataset: Dataset, frame: int) -> tuple[float, float]:
    """(slope, intercept) of a frame: PixelValueTransformationSequence, else top-level tags, else (1, 0)."""
    item = functional_group(dataset, frame, "PixelValueTransformationSequence")
    for source in (item, dataset):
        if source is not None and "RescaleSlope" in source and source.RescaleSlope not in (None, ""):
            return float(source.RescaleSlope), float(source.get("RescaleIntercept") or 0.0)
    return 1.0, 0.0


def enhanced_geometry(path: Path, header: Dataset, *, min_slices: int = MIN_SLICES,
                      max_voxels: int | None = DEFAULT_MAX_VOXELS) -> StackGeometry:
    """The checked frame stack of an enhanced multi-frame object, from its header only (no pixels).

    The voxel count (frames x Rows x Columns) is checked against ``max_voxels`` before any
    per-frame work, so a header claiming millions of frames costs nothing.
    """
    check_image_object(path, header)
    if "PerFrameFunctionalGroupsSequence" not in header and int(header.get("NumberOfFrames") or 1) <= 1:
        raise InputError(path, "a single image slice (a classic single-frame object), not a volume",
                         "give the folder that holds every slice of the series")
    frames = int(header.get("NumberOfFrames") or 1)
    _check_voxels(path, (int(header.get("Columns") or 0), int(header.get("Rows") or 0), frames), max_voxels)
    headers = frame_headers(path, header)
    geometry = check_stack(path, headers, min_slices=min_slices)
    _check_voxels(path, geometry.shape, max_voxels)
    return geometry


def read_enhanced_dicom(
    path: str | Path, *, min_slices: int = MIN_SLICES, max_voxels: int | None = DEFAULT_MAX_VOXELS
) -> Volume:
    """Read an enhanced multi-frame image (Enhanced CT/MR...) into a Volume.

    Frame geometry comes from the functional groups: PlanePositionSequence (per frame),
    PlaneOrientationSequence and PixelMeasuresSequence (per frame or shared), intensities
    from PixelValueTransformationSequence. Frames go through the same stack checks as a
    series (a 4D or multi-echo object is refused), and the axes and affine follow the
    same dcm2niix convention as ``read_dicom_series``.

    Returns:
        Volume (1, I, J, K); ``source.dicom["frame_numbers"]`` gives the 1-based frame of each k.
    """
    path = Path(path)
    header = read_dicom_header(path)
    if header is None:
        raise InputError(path, "not a DICOM file", "give an enhanced multi-frame DICOM file")
    geometry = enhanced_geometry(path, header, min_slices=min_slices, max_voxels=max_voxels)
    shape = geometry.shape
    dataset = _read_full(path)
    stored = _stored_pixels(path, dataset)
    if stored.ndim == 2:
        stored = stored[np.newaxis]
    values = np.empty(shape, dtype=np.float32)
    for k, frame in enumerate(geometry.order):
        slope, intercept = _frame_rescale(dataset, frame)
        values[:, :, k] = (stored[frame].astype(np.float64) * slope + intercept)[::-1, :].T
    source = SourceInfo(
        path=str(path),
        format="dicom-enhanced",
        modality=str(header.get("Modality", "")),
        description=str(header.get("SeriesDescription", "")),
        files=(str(path),),
        dicom={**_dicom_ids(header, [str(header.get("SOPInstanceUID", ""))]),
               "frame_numbers": tuple(n + 1 for n in geometry.order)},
    )
    return Volume(array=_finish(values), affine=geometry.affine, source=source)
