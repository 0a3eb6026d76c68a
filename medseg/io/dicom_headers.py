"""DICOM headers without pixels: sniffing, reading, and the per-slice geometry facts.

The header pass reads every file with ``stop_before_pixels=True``; the facts each
check and the affine need are gathered into one ``SliceHeader`` per slice (one per
file for a classic series, one per frame for an enhanced multi-frame object).
Malformed geometry values raise ``InputError`` here, naming the file and tag.

Limits (a header is untrusted input, read for every file of a study before any case starts):

* only ``HEADER_TAGS`` are kept (top level), so private blobs, overlays and icons are skipped
  unread when their length is defined, and a header is a few kB of facts, not a whole dataset;
* the Deflated Explicit VR Little Endian transfer syntax is refused from its file meta, before
  anything is inflated (pydicom inflates the whole body in memory: a 1 MB file can need GBs);
* sequences nested deeper than ``MAX_SEQUENCE_DEPTH`` or holding more than ``MAX_SEQUENCE_ITEMS``
  items in all are refused; a nesting deep enough to exhaust Python's stack while pydicom parses
  it (undefined-length items are parsed recursively) is reported the same way;
* any exception while parsing is the file's problem (an ``InputError`` naming the file, with
  the exception's type and tag only: library messages can quote tag values).

Headers are read once: a parsed header is kept in a small in-process cache (``HEADER_CACHE_SIZE``
files, a few kB each) keyed by the file's path and identity (device, inode, size, modification and
change times in ns), so discovery and the series reader that follows it parse each file once; a
file changed in any way is parsed again. The cache also keeps where the PixelData element starts
(the parser stops right before it), which the series reader uses to read uncompressed pixels
directly (``medseg.io.dicom_pixels``).
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.tag import Tag

from medseg.errors import InputError
from medseg.io.redact import library_error

T = TypeVar("T")

# ImageOrientationPatient cosines must have length 1 and be orthogonal to this tolerance.
UNIT_TOLERANCE = 1e-3
ORTHOGONALITY_TOLERANCE = 1e-3

# What pydicom may raise on bytes that are not (valid) DICOM; listed so nothing else is swallowed.
PARSE_ERRORS = (
    InvalidDicomError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    MemoryError,
    NotImplementedError,
    struct.error,
)

DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"
MAX_SEQUENCE_DEPTH = 8
MAX_SEQUENCE_ITEMS = 200_000
DAMAGED_HINT = "the file is damaged or truncated; copy it again from the source"

# Tags whose values tell apart images acquired at the same place (echoes, time points...).
ACQUISITION_KEYWORDS = (
    "EchoTime",
    "EchoNumbers",
    "TemporalPositionIdentifier",
    "AcquisitionNumber",
    "TriggerTime",
    "DiffusionBValue",
)

# The top-level tags a header read keeps: what discovery, the checks and the readers use.
HEADER_TAGS = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "SOPInstanceUID", "Modality", "SeriesDescription",
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "InstanceNumber", "NumberOfFrames",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
    "GantryDetectorTilt", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "RescaleSlope", "RescaleIntercept", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
    "BitsStored", "PixelRepresentation", "ModalityLUTSequence",  # how to decode and rescale the pixels
    *ACQUISITION_KEYWORDS,
)
_HEADER_TAG_NUMBERS = [Tag(keyword) for keyword in HEADER_TAGS]  # resolved once, not per file
PIXEL_DATA_TAG = 0x7FE00010
# Parsed headers kept for reuse (discovery then reading parse each file once); a few kB each.
HEADER_CACHE_SIZE = 4096
_CACHE: OrderedDict[tuple[object, ...], tuple[Dataset, int | None]] = OrderedDict()
# Facts derived from headers (a slice's SliceHeader, a series' checks), keyed by the header objects' ids;
# the objects are kept with the fact, so an id cannot be reused while it is remembered.
_DERIVED: OrderedDict[tuple[object, ...], tuple[tuple[Dataset, ...], object]] = OrderedDict()
_CACHE_LOCK = threading.Lock()

GEOMETRY_HINT = (
    "the slices lack valid patient geometry (ImagePositionPatient, ImageOrientationPatient, "
    "PixelSpacing); export the original series again from the scanner or PACS"
)


def dicom_prefix(path: Path) -> str | None:
    """How a file starts: ``"part10"`` (128-byte preamble + ``DICM``), ``"raw"``
    (no preamble, first tag in group 0002 or 0008), or None (not DICOM)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(132)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "part10"
    if len(head) >= 8:
        little, big = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
        if little in (0x0002, 0x0008) or big in (0x0002, 0x0008):
            return "raw"
    return None


def read_dicom_header(path: str | Path) -> Dataset | None:
    """The header of a DICOM file, without pixel data; None when it is not DICOM.

    A part-10 file (preamble + ``DICM``) is read with ``force=False``; a file with
    no preamble is read with ``force=True`` only when its first tag is in group
    0002 or 0008 (as older writers produce), and kept only if it parses. The returned
    dataset may be shared with earlier callers (see the module docstring): do not modify it.

    Raises:
        InputError: the file says it is DICOM (``DICM`` prefix) but its header is corrupt or empty.
    """
    return read_header_and_offset(path)[0]


def read_header_and_offset(path: str | Path) -> tuple[Dataset | None, int | None]:
    """``read_dicom_header`` plus the byte offset of the file's PixelData element (None when not found).

    The offset is where the header parser stopped: the start of the (7FE0,0010) element's tag.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError:
        return None, None
    key = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    if not path.is_file():
        return None, None
    dataset, offset = _parse_header(path)
    if dataset is not None:
        with _CACHE_LOCK:
            _CACHE[key] = (dataset, offset)
            while len(_CACHE) > HEADER_CACHE_SIZE:
                _CACHE.popitem(last=False)
    return dataset, offset


def clear_header_cache() -> None:
    """Forget every cached header (tests; a long-running process that wants the memory back)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _DERIVED.clear()


def _parse_header(path: Path) -> tuple[Dataset | None, int | None]:
    """Parse one file's header (the checks of ``read_dicom_header``) and find its PixelData offset."""
    kind = dicom_prefix(path)
    if kind is None:
        return None, None
    offset = None
    try:
        if kind == "part10":
            check_transfer_syntax(path)
        with open(path, "rb") as stream:
            dataset = pydicom.dcmread(stream, stop_before_pixels=True, force=kind == "raw",
                                      specific_tags=_HEADER_TAG_NUMBERS)
            offset = _pixel_data_offset(stream)
        check_sequences(path, dataset)
    except InputError:
        raise
    except RecursionError:
        if kind == "raw":
            return None, None
        raise InputError(path, "DICOM sequences are nested too deeply to parse", DAMAGED_HINT) from None
    except Exception as error:  # noqa: BLE001 - whatever the parser raises, it is this file's problem
        if kind == "raw":
            return None, None
        raise InputError(path, f"DICOM header cannot be parsed ({library_error(error)})", DAMAGED_HINT) from None
    if len(dataset) == 0 and not _has_body(path, dataset):
        if kind == "raw":
            return None, None
        raise InputError(path, "DICOM file holds no data elements after its file meta (truncated or empty)",
                         "the file is damaged or truncated; copy it again from the source")
    return dataset, offset


def _pixel_data_offset(stream: BinaryIO) -> int | None:
    """The stream's position when the next 4 bytes are the (7FE0,0010) PixelData tag (little endian), else None."""
    position = stream.tell()
    head = stream.read(4)
    if len(head) == 4 and struct.unpack("<HH", head) == (PIXEL_DATA_TAG >> 16, PIXEL_DATA_TAG & 0xFFFF):
        return int(position)
    return None


def _has_body(path: Path, dataset: Dataset) -> bool:
    """Whether bytes follow the file meta (only the kept tags are read, so an empty dataset may
    still be a DICOMDIR or a non-image object with none of them)."""
    meta = getattr(dataset, "file_meta", None)
    length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    if length is None:
        return False
    # 128-byte preamble + "DICM" + the group-length element (12 bytes) + the rest of the meta group.
    return path.stat().st_size > 132 + 12 + int(length)


def check_transfer_syntax(path: Path) -> None:
    """Refuse a part-10 file whose file meta declares the Deflated transfer syntax (nothing is inflated).

    Raises:
        InputError: deflated, or file meta that cannot be read.
    """
    syntax = _scanned_transfer_syntax(path)
    if syntax is None:
        try:
            syntax = str(read_file_meta_info(path).get("TransferSyntaxUID", ""))
        except Exception as error:  # noqa: BLE001 - any parser failure is this file's problem
            raise InputError(path, f"DICOM file meta cannot be parsed ({library_error(error)})",
                             DAMAGED_HINT) from None
    if syntax == DEFLATED_SYNTAX:
        raise InputError(
            path, "Deflated transfer syntax is refused: it must be inflated whole in memory (a small file can "
            "need gigabytes)", "convert the file to uncompressed DICOM (e.g. 'gdcmconv --raw' or dcmtk 'dcmconv +te')",
        )


# Explicit VR elements with a 4-byte length (after 2 reserved bytes); the rest have a 2-byte length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_META_SCAN_BYTES = 4096


def _scanned_transfer_syntax(path: Path) -> str | None:
    """The TransferSyntaxUID of a part-10 file's meta, found by stepping over its group 0002 elements
    (always explicit VR little endian); None when the scan finds anything unusual (pydicom then parses
    the meta, with its errors). pydicom's full meta parse here, before the header read parses it again,
    was a fifth of a header read."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(_META_SCAN_BYTES)
    except OSError:
        return None
    position = 132
    while position + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            return None  # the meta ended without a transfer syntax
        vr = data[position + 4:position + 6]
        if vr in _LONG_VRS:
            if position + 12 > len(data):
                return None
            length, start = struct.unpack_from("<I", data, position + 8)[0], position + 12
        elif vr.isalpha() and vr.isupper():
            length, start = struct.unpack_from("<H", data, position + 6)[0], position + 8
        else:
            return None
        if start + length > len(data):
            return None
        if element == 0x0010:
            value = data[start:start + length].rstrip(b"\0 ")
            return value.decode("ascii") if value.isascii() else None
        position = start + length
    return None


def check_sequences(path: Path, dataset: Dataset) -> None:
    """Refuse sequences nested deeper than MAX_SEQUENCE_DEPTH or with more than MAX_SEQUENCE_ITEMS items in all.

    Walks iteratively (no recursion of its own); nested items are parsed by pydicom as they are reached.
    Only elements that may be sequences are converted from their raw bytes (the rest are converted
    when read, as before: checking them here cost a third of a header read).
    """
    stack: list[tuple[Dataset, int]] = [(dataset, 0)]
    items = 0
    while stack:
        current, depth = stack.pop()
        for raw in current.elements():
            if not _may_be_sequence(raw.tag, raw.VR):
                continue
            element = current[raw.tag]
            if element.VR != "SQ":
                continue
            if depth + 1 > MAX_SEQUENCE_DEPTH:
                raise InputError(path, f"DICOM sequences nested more than {MAX_SEQUENCE_DEPTH} deep "
                                 f"(at {element.keyword or element.tag})", DAMAGED_HINT)
            items += len(element.value)
            if items > MAX_SEQUENCE_ITEMS:
                raise InputError(path, f"DICOM sequences hold more than {MAX_SEQUENCE_ITEMS} items",
                                 "the header is too large to be an image header; check the file")
            stack.extend((item, depth + 1) for item in element.value)


def _may_be_sequence(tag: int, vr: str | None) -> bool:
    """Whether an element may hold a sequence: VR SQ, or no/unknown VR (implicit VR, UN) where the
    dictionary says SQ or does not know the tag (then pydicom's conversion decides)."""
    if vr not in (None, "UN"):
        return vr == "SQ"
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return True


@dataclass(frozen=True, eq=False)
class SliceHeader:
    """Geometry and acquisition facts of one slice (a file, or a frame of one).

    Attributes:
        source: the file, plus ``" [frame n]"`` (1-based) for a frame of a multi-frame object.
        position: shape (3,), ImagePositionPatient (LPS mm) of the first transmitted pixel.
        row_cosine: shape (3,), unit LPS direction along a row.
        column_cosine: shape (3,), unit LPS direction down a column.
        pixel_spacing: (row spacing, column spacing) in mm (DICOM order).
        rows: number of rows.
        columns: number of columns.
        slice_thickness: SliceThickness in mm, or None when absent or empty.
        spacing_between_slices: SpacingBetweenSlices in mm, or None.
        gantry_tilt: GantryDetectorTilt in degrees (0 when absent).
        instance_number: InstanceNumber, or the frame number for frames.
        acquisition: values (as text) of tags that separate echoes, time points, acquisitions.
    """

    source: str
    position: np.ndarray
    row_cosine: np.ndarray
    column_cosine: np.ndarray
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    gantry_tilt: float = 0.0
    instance_number: int | None = None
    acquisition: dict[str, str] = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        """shape (3,), cross(row_cosine, column_cosine)."""
        return np.cross(self.row_cosine, self.column_cosine)


def _numbers(where: str, item: Dataset | None, keyword: str, count: int) -> np.ndarray:
    """``count`` finite numbers from a multi-valued tag, or InputError saying what is wrong."""
    raw = item.get(keyword) if item is not None else None
    if raw is None or raw == "" or raw == []:
        raise InputError(where, f"{keyword} is missing", GEOMETRY_HINT)
    values = list(raw) if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)) else [raw]
    try:
        numbers = np.array([float(v) for v in values], dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(where, f"{keyword} holds a non-numeric value {values!r}", GEOMETRY_HINT) from error
    if numbers.size != count:
        raise InputError(where, f"{keyword} has {numbers.size} values, expected {count}", GEOMETRY_HINT)
    if not np.all(np.isfinite(numbers)):
        raise InputError(where, f"{keyword} holds a non-finite value {values!r}", GEOMETRY_HINT)
    return numbers


def _optional_float(item: Dataset | None, keyword: str) -> float | None:
    """A single number, or None when the tag is absent, empty or not a number."""
    if item is None or keyword not in item:
        return None
    value = item[keyword].value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _optional_int(where: str, item: Dataset, keyword: str) -> int | None:
    """An integer tag, None when absent or empty; InputError (without the value) when it is not an integer."""
    try:
        value = item.get(keyword)
        if value in (None, ""):
            return None
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(where, f"{keyword} is not an integer", "the file is inconsistent; export it again") from None


def _cosines(where: str, item: Dataset | None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column unit vectors from ImageOrientationPatient, checked and normalised."""
    values = _numbers(where, item, "ImageOrientationPatient", 6)
    row, column = values[:3], values[3:]
    for name, vector in (("row", row), ("column", column)):
        length = float(np.linalg.norm(vector))
        if abs(length - 1.0) > UNIT_TOLERANCE:
            raise InputError(
                where, f"ImageOrientationPatient {name} direction has length {length:.4f}, not 1", GEOMETRY_HINT
            )
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    dot = float(row @ column)
    if abs(dot) > ORTHOGONALITY_TOLERANCE:
        raise InputError(
            where,
            f"ImageOrientationPatient row and column directions are not orthogonal (cosine {dot:.4f})",
            GEOMETRY_HINT,
        )
    return row, column


def _spacing(where: str, item: Dataset | None) -> tuple[float, float]:
    values = _numbers(where, item, "PixelSpacing", 2)
    if np.any(values <= 0):
        raise InputError(where, f"PixelSpacing must be positive, got {values.tolist()}", GEOMETRY_HINT)
    return float(values[0]), float(values[1])


def _size(where: str, dataset: Dataset) -> tuple[int, int]:
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    if not rows or not columns:
        raise InputError(where, "Rows/Columns are missing or zero: no image in this object",
                         "give the folder of an image series (CT or MR)")
    return int(rows), int(columns)


def _text(value: object) -> str:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def remembered(kind: str, datasets: Sequence[Dataset], extra: tuple[object, ...], compute: Callable[[], T]) -> T:
    """``compute()``, remembered for these header objects (shared and never modified, see
    ``read_dicom_header``): discovery and the reader that follows it check a series once.

    A changed file is parsed into a new header object (the cache is keyed by the file's identity), so a
    fact is never reused for a file that changed. Only results are remembered: a failed check raises again.

    Args:
        kind: what is computed (part of the key).
        datasets: the headers the fact is computed from.
        extra: the other arguments the fact depends on (paths, limits).
    """
    key = (kind, tuple(id(dataset) for dataset in datasets), extra)
    with _CACHE_LOCK:
        known = _DERIVED.get(key)
        if known is not None:
            _DERIVED.move_to_end(key)
    if known is not None and all(kept is given for kept, given in zip(known[0], datasets)):
        return known[1]  # type: ignore[return-value]
    value = compute()
    with _CACHE_LOCK:
        _DERIVED[key] = (tuple(datasets), value)
        while len(_DERIVED) > HEADER_CACHE_SIZE:
            _DERIVED.popitem(last=False)
    return value


def slice_header(path: Path, dataset: Dataset) -> SliceHeader:
    """The SliceHeader of a single-frame image file (header read without pixels), built once per header."""
    where = str(path)
    return remembered("slice header", (dataset,), (where,), lambda: _slice_header(where, dataset))


def _slice_header(where: str, dataset: Dataset) -> SliceHeader:
    rows, columns = _size(where, dataset)
    row_cosine, column_cosine = _cosines(where, dataset)
    number = _optional_int(where, dataset, "InstanceNumber")
    acquisition = {k: _text(dataset[k].value) for k in ACQUISITION_KEYWORDS if k in dataset and dataset[k].value != ""}
    return SliceHeader(
        source=where,
        position=_numbers(where, dataset, "ImagePositionPatient", 3),
        row_cosine=row_cosine,
        column_cosine=column_cosine,
        pixel_spacing=_spacing(where, dataset),
        rows=rows,
        columns=columns,
        slice_thickness=_optional_float(dataset, "SliceThickness"),
        spacing_between_slices=_optional_float(dataset, "SpacingBetweenSlices"),
        gantry_tilt=_optional_float(dataset, "GantryDetectorTilt") or 0.0,
        instance_number=number,
        acquisition=acquisition,
    )


def functional_group(dataset: Dataset, frame: int, keyword: str) -> Dataset | None:
    """The first item of functional-group sequence ``keyword`` for ``frame`` (0-based):
    from PerFrameFunctionalGroupsSequence if there, else SharedFunctionalGroupsSequence."""
    for container, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = dataset.get(container)
        if groups is not None and len(groups) > index and keyword in groups[index]:
            sequence = groups[index][keyword].value
            if sequence:
                return sequence[0]
    return None


def frame_headers(path: Path, dataset: Dataset) -> list[SliceHeader]:
    """One SliceHeader per frame of an enhanced multi-frame image (Enhanced CT/MR...)."""
    n_frames = int(dataset.get("NumberOfFrames") or 1)
    rows, columns = _size(str(path), dataset)
    if "PerFrameFunctionalGroupsSequence" not in dataset:
        raise InputError(path, "multi-frame object without PerFrameFunctionalGroupsSequence", GEOMETRY_HINT)
    if len(dataset.PerFrameFunctionalGroupsSequence) != n_frames:
        raise InputError(
            path,
            f"PerFrameFunctionalGroupsSequence has {len(dataset.PerFrameFunctionalGroupsSequence)} items "
            f"for {n_frames} frames",
            "the file is inconsistent; export it again",
        )
    headers = []
    for frame in range(n_frames):
        where = f"{path} [frame {frame + 1}]"
        position = _numbers(where, functional_group(dataset, frame, "PlanePositionSequence"), "ImagePositionPatient", 3)
        row_cosine, column_cosine = _cosines(where, functional_group(dataset, frame, "PlaneOrientationSequence"))
        measures = functional_group(dataset, frame, "PixelMeasuresSequence")
        content = functional_group(dataset, frame, "FrameContentSequence")
        acquisition = {}
        for keyword, group, tag in (
            ("TemporalPositionIndex", content, "TemporalPositionIndex"),
            ("StackID", content, "StackID"),
            ("FrameAcquisitionNumber", content, "FrameAcquisitionNumber"),
            ("EffectiveEchoTime", functional_group(dataset, frame, "MREchoSequence"), "EffectiveEchoTime"),
            ("DiffusionBValue", functional_group(dataset, frame, "MRDiffusionSequence"), "DiffusionBValue"),
            ("NominalCardiacTriggerDelayTime", functional_group(dataset, frame, "CardiacSynchronizationSequence"),
             "NominalCardiacTriggerDelayTime"),
        ):
            if group is not None and tag in group and group[tag].value not in (None, ""):
                acquisition[keyword] = _text(group[tag].value)
        headers.append(
            SliceHeader(
                source=where,
                position=position,
                row_cosine=row_cosine,
                column_cosine=column_cosine,
                pixel_spacing=_spacing(where, measures),
                rows=rows,
                columns=columns,
                slice_thickness=_optional_float(measures, "SliceThickness"),
                spacing_between_slices=_optional_float(measures, "SpacingBetweenSlices"),
                gantry_tilt=_optional_float(dataset, "GantryDetectorTilt") or 0.0,
                instance_number=frame + 1,
                acquisition=acquisition,
            )
        )
    return headers
