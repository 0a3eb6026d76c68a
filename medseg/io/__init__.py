"""Scans on disk <-> Volume, with exact geometry.

Public API:
    read_scan(path, ...) -> Volume          one scan (NIfTI, NRRD, MHA, DICOM series folder, enhanced DICOM)
    read_case(paths, channel_names) -> Volume   co-registered scans stacked as channels
    read_labels(path, reference) -> LabelVolume a label map checked against its scan's grid
    write_labels(labels, path, reference)   atomic write on the reference's grid
    discover(folder) -> Discovery           the scans in a study folder, and what was skipped and why
"""

from __future__ import annotations

from medseg.io.discover import Discovery, ScanSource, SkippedFile, discover
from medseg.io.read import read_case, read_labels, read_scan
from medseg.io.write import write_labels

__all__ = [
    "Discovery",
    "ScanSource",
    "SkippedFile",
    "discover",
    "read_case",
    "read_labels",
    "read_scan",
    "write_labels",
]
