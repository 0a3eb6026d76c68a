"""Pixels of a checked single-frame DICOM series, stacked into medseg's (I, J, K) layout.

The series reader (``medseg.io.dicom.read_dicom_series``) checks every header first, then calls
``stack_slices``. Each slice is read one of two ways:

* fast (uncompressed little-endian pixels, 8 or 16 bits, no Modality LUT Sequence, a plain
  single-frame object): the file is opened once, the PixelData element found where the header
  parser stopped (``medseg.io.dicom_headers.read_header_and_offset``) and verified (tag, VR,
  length = Rows x Columns x BitsAllocated / 8, or one padding byte more), and its bytes read
  with ``np.frombuffer``. The values are those pydicom gives: unused high bits are cleared
  (unsigned) or sign-extended (signed) by the same shifts as pydicom's ``correct_unused_bits``,
  then RescaleSlope/Intercept applied as in ``pydicom.pixels.apply_modality_lut`` (only when
  both are present);
* otherwise (compressed, big endian, Modality LUT Sequence, one-frame enhanced objects, or a
  fast read that finds anything unexpected): pydicom reads the whole file and decodes it, with
  the checks and errors of before (truncated pixel data, missing decoder...).

Slices go into a (K, Rows, Columns) stack, rows reversed, in int16 while every value is an
integer in int16 range and float32 from the first slice that is not (then the stack so far is
converted once). ``stack.transpose(2, 1, 0)`` is then the (I, J, K) volume with ``j = Rows - 1 - r``
(dcm2niix's layout), a view with positive strides (Fortran-like order, as nibabel gives for NIfTI):
no transposing copy. The int16-or-float32 rule and values equal those of the earlier reader
(float64 rescale, float32 cast, int16 when every value is whole and in range); tested.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

INT16_MIN, INT16_MAX = -32768, 32767
_FITS_INT16 = frozenset({np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)})  # no range pass needed
NATIVE_LITTLE_ENDIAN = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})
# Integer rescale parameters up to these sizes are computed exactly in int64.
MAX_INTEGER_SLOPE, MAX_INTEGER_INTERCEPT = 2**15, 2**31

# A fallback reader: (path) -> rescaled slice (Rows, Columns), as the earlier reader computed it.
SliceReader = Callable[[Path], np.ndarray]


def _transfer_syntax(dataset: Dataset) -> tuple[str | None, bool | None]:
    """(transfer syntax UID or None, implicit VR or None) of a header read from a file."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return str(syntax), str(syntax) == str(ImplicitVRLittleEndian)
    encoding = getattr(dataset, "original_encoding", (None, None))
    if encoding[1] is True:  # no file meta: read as parsed, little endian only here
        return str(ImplicitVRLittleEndian if encoding[0] else ExplicitVRLittleEndian), bool(encoding[0])
    return None, None


def native_layout(dataset: Dataset) -> tuple[np.dtype, int, int, bool] | None:
    """How to read a slice's pixels directly: (dtype, bits allocated, bits stored, implicit VR), or None.

    None for anything the direct path does not cover (then pydicom decodes the file).
    """
    syntax, implicit = _transfer_syntax(dataset)
    if syntax not in NATIVE_LITTLE_ENDIAN or implicit is None:
        return None
    if "ModalityLUTSequence" in dataset or "PerFrameFunctionalGroupsSequence" in dataset:
        return None
    if int(dataset.get("SamplesPerPixel") or 1) != 1 or int(dataset.get("NumberOfFrames") or 1) != 1:
        return None
    allocated = dataset.get("BitsAllocated")
    stored = dataset.get("BitsStored")
    representation = dataset.get("PixelRepresentation")
    if allocated not in (8, 16) or representation not in (0, 1) or stored is None or not 1 <= stored <= allocated:
        return None
    kind = "i" if representation == 1 else "u"
    return np.dtype(f"<{kind}{allocated // 8}"), int(allocated), int(stored), bool(implicit)


def plain_rescale(dataset: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) as ``apply_modality_lut`` uses them: (1, 0) unless both tags are present.

    None when a tag is present but empty or not a finite number (pydicom's path then decides).
    """
    if "RescaleSlope" not in dataset or "RescaleIntercept" not in dataset:
        return 1.0, 0.0
    try:
        slope, intercept = float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        return None
    return slope, intercept


def read_native_slice(path: Path, dataset: Dataset, offset: int | None) -> np.ndarray | None:
    """A slice's stored values (Rows, Columns), read straight from the file; None when the file
    does not look exactly as its header says (then pydicom reads it, with its own checks)."""
    layout = native_layout(dataset)
    if layout is None or offset is None:
        return None
    dtype, allocated, stored, implicit = layout
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    expected = rows * columns * dtype.itemsize
    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            head = stream.read(8 if implicit else 12)
            if len(head) < (8 if implicit else 12) or struct.unpack("<HH", head[:4]) != (0x7FE0, 0x0010):
                return None
            if implicit:
                length = struct.unpack("<I", head[4:8])[0]
            else:
                if head[4:6] not in (b"OW", b"OB") or head[6:8] != b"\0\0":
                    return None
                length = struct.unpack("<I", head[8:12])[0]
            if length not in (expected, expected + 1):
                return None
            buffer = stream.read(expected)
    except OSError:
        return None
    if len(buffer) != expected:
        return None
    values = np.frombuffer(buffer, dtype=dtype).reshape(rows, columns)
    if stored < allocated:  # pydicom's correct_unused_bits: the same two shifts
        values = values.copy()
        np.left_shift(values, allocated - stored, out=values)
        np.right_shift(values, allocated - stored, out=values)
    return values


class SliceStack:
    """A (K, Rows, Columns) stack filled slice by slice: int16 while every value allows, else float32."""

    def __init__(self, slices: int, rows: int, columns: int) -> None:
        self.values = np.empty((slices, rows, columns), dtype=np.int16)

    def put_integers(self, k: int, values: np.ndarray) -> None:
        """Slice ``k`` from exact integer values (any integer dtype), rows reversed."""
        if self.values.dtype == np.int16 and (values.dtype in _FITS_INT16 or (
                values.size and values.min() >= INT16_MIN and values.max() <= INT16_MAX)):
            np.copyto(self.values[k], values[::-1], casting="unsafe")
            return
        self._to_float()
        np.copyto(self.values[k], values[::-1], casting="unsafe")  # int64 -> float32 rounds as float64 would

    def put_float(self, k: int, values: np.ndarray) -> None:
        """Slice ``k`` from rescaled values (cast to float32 first, as the earlier reader did), rows reversed."""
        single = np.asarray(values, dtype=np.float32)
        if self.values.dtype == np.int16 and _whole_int16(single):
            np.copyto(self.values[k], single[::-1], casting="unsafe")
            return
        self._to_float()
        self.values[k] = single[::-1]

    def _to_float(self) -> None:
        if self.values.dtype != np.float32:
            self.values = self.values.astype(np.float32)

    def volume(self) -> np.ndarray:
        """(I, J, K) = stack.transpose(2, 1, 0): a view, positive strides."""
        return self.values.transpose(2, 1, 0)


def _whole_int16(values: np.ndarray) -> bool:
    """Every float32 value is a whole number in int16 range (NaN and inf are not)."""
    if not values.size:
        return False
    low, high = values.min(), values.max()
    if not (low >= INT16_MIN and high <= INT16_MAX):  # also False for NaN
        return False
    return bool(np.array_equal(np.rint(values), values))


def put_slice(stack: SliceStack, k: int, stored: np.ndarray, rescale: tuple[float, float]) -> None:
    """Rescale stored values (Rows, Columns) as ``apply_modality_lut`` does and put them at ``k``."""
    slope, intercept = rescale
    if (slope, intercept) == (1.0, 0.0):
        stack.put_integers(k, stored)
    elif (slope.is_integer() and intercept.is_integer() and abs(slope) <= MAX_INTEGER_SLOPE
          and abs(intercept) <= MAX_INTEGER_INTERCEPT):
        stack.put_integers(k, stored.astype(np.int64) * int(slope) + int(intercept))
    else:
        stack.put_float(k, stored.astype(np.float64) * slope + intercept)


def stack_slices(
    files: Sequence[Path], datasets: Sequence[Dataset], offsets: Sequence[int | None], rows: int, columns: int,
    fallback: SliceReader,
) -> np.ndarray:
    """Read every slice (k order) into the (I, J, K) volume, int16 when exact, else float32.

    Args:
        files: slice files in k order.
        datasets: their headers (no pixels).
        offsets: their PixelData offsets (``read_header_and_offset``), None where unknown.
        rows: DICOM Rows; columns: DICOM Columns (every slice's, already checked).
        fallback: reads and rescales one slice through pydicom (with its checks and errors).

    Returns:
        (Columns, Rows, K) array, ``[i, j, k] = slice_k[Rows - 1 - j, i]``.
    """
    stack = SliceStack(len(files), rows, columns)
    for k, (path, dataset, offset) in enumerate(zip(files, datasets, offsets)):
        rescale = plain_rescale(dataset)
        stored = read_native_slice(path, dataset, offset) if rescale is not None else None
        if stored is None:
            stack.put_float(k, fallback(path))
        else:
            put_slice(stack, k, stored, rescale)
    return stack.volume()
