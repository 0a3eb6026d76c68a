"""Builders of hostile inputs for the hardening tests: bombs, deep sequences, junk, planted exports.

Every builder writes real files (pydicom, zlib, TorchScript) into a folder the test owns.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

import corpus

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _meta(syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = generate_uid()
    return meta


def _part10(meta: FileMetaDataset) -> bytes:
    """Preamble, ``DICM`` and the file meta group, as pydicom writes them."""
    from io import BytesIO

    from pydicom.filewriter import write_file_meta_info

    buffer = BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element with a short length field."""
    if len(value) % 2:
        value += b" "
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _header_elements() -> bytes:
    """Modality MR and a SeriesInstanceUID (group 0008, 0020 elements in order)."""
    return (_element(0x0008, 0x0060, b"CS", b"MR")
            + _element(0x0020, 0x000E, b"UI", generate_uid().encode() + b"\0"))


def deep_sequence_file(path: Path, depth: int = 5000) -> Path:
    """A part-10 file whose (0040,0275) sequence nests ``depth`` undefined-length items."""
    opening = struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000,
                                                                                        0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    body = _header_elements() + opening * depth + closing * depth
    path.write_bytes(_part10(_meta(ExplicitVRLittleEndian)) + body)
    return path


def deflate_bomb(path: Path, inflated_bytes: int) -> Path:
    """A part-10 Deflated file whose body inflates to ``inflated_bytes`` (a private OB of zeros)."""
    head = _header_elements()
    size = inflated_bytes - len(head) - 12
    blob = struct.pack("<HH2sHI", 0x0029, 0x1010, b"OB", 0, size)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [compressor.compress(head + blob)]
    chunk = b"\0" * (1 << 20)
    left = size
    while left > 0:
        parts.append(compressor.compress(chunk[:min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(compressor.flush())
    path.write_bytes(_part10(_meta(DeflatedExplicitVRLittleEndian)) + b"".join(parts))
    return path


def bad_instance_number_series(folder: Path, value: bytes = b"ab") -> list[Path]:
    """A good MR series (corpus) whose middle slice's InstanceNumber holds ``value`` (not an integer)."""
    files = corpus.series(folder)
    target = files[len(files) // 2]
    dataset = pydicom.dcmread(target)
    dataset.InstanceNumber = 7
    dataset.save_as(target)
    data = target.read_bytes()
    needle = struct.pack("<HH2sH", 0x0020, 0x0013, b"IS", 2) + b"7 "
    assert needle in data
    target.write_bytes(data.replace(needle, struct.pack("<HH2sH", 0x0020, 0x0013, b"IS", len(value)) + value))
    return files


def huge_enhanced_header(root: Path, frames: int = 50_000, size: int = 512) -> Path:
    """An Enhanced MR object (corpus) whose header claims ``frames`` frames of ``size`` x ``size``."""
    path = corpus.enhanced_multiframe(root)
    dataset = pydicom.dcmread(path)
    dataset.NumberOfFrames = frames
    dataset.Rows = dataset.Columns = size
    dataset.save_as(path)
    return path


def truncated_enhanced(root: Path) -> Path:
    """An Enhanced MR object (corpus) cut inside its pixel data: the header is whole."""
    path = corpus.enhanced_multiframe(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    return path


SETSTATE_MARKER = "QXZ-SETSTATE-RAN"


def planted_export(path: Path) -> Path:
    """A TorchScript module whose ``__setstate__`` prints SETSTATE_MARKER when ``torch.jit.load`` reads it
    (a stand-in for any code an attacker's export runs at load)."""
    import torch

    class Planted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = 1.0

        @torch.jit.export
        def __getstate__(self) -> tuple[float, bool]:
            return (self.scale, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[float, bool]) -> None:
            print("QXZ-SETSTATE-RAN")
            self.scale = state[0]
            self.training = state[1]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x * self.scale, -x * self.scale], dim=1)

    torch.jit.save(torch.jit.script(Planted()), str(path))
    return path
