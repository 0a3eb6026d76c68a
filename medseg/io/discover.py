"""Walk a study folder: DICOM series grouped by SeriesInstanceUID, image files, and what was skipped.

Nothing is chosen silently: every series is listed (several series in one folder
are several sources), and every file that is not used is listed with the reason.
Only headers are read here; pixels are read by ``medseg.io.read_scan``.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError
from medseg.io.dicom import read_enhanced_dicom
from medseg.io.dicom_checks import check_series_files
from medseg.io.dicom_headers import read_dicom_header
from medseg.io.nifti import nifti_grid
from medseg.io.sitk_image import sitk_grid
from medseg.types import orientation_codes, spacing_from_affine

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "mha",
    ".mhd": "mha",
}
# Companion files of header/data pairs: read through their header file.
DATA_COMPANION_SUFFIXES = (".raw", ".zraw", ".img", ".hdr")
# DICOM objects that are not images to segment (by Modality).
NON_IMAGE_MODALITIES = {
    "SEG": "a DICOM-SEG segmentation object, not an image",
    "RTSTRUCT": "an RT structure set, not an image",
    "RTPLAN": "an RT plan, not an image",
    "RTDOSE": "an RT dose grid, not an image to segment",
    "RTRECORD": "an RT treatment record, not an image",
    "SR": "a structured report, not an image",
    "PR": "a presentation state, not an image",
    "KO": "a key-object selection, not an image",
    "REG": "a registration object, not an image",
    "DOC": "an encapsulated document, not an image",
}


@dataclass(frozen=True)
class ScanSource:
    """One readable scan found in a study folder (a DICOM series or an image file).

    Attributes:
        path: the image file, or for a DICOM series the folder holding its files.
        kind: ``"dicom-series"``, ``"dicom-enhanced"``, ``"nifti"``, ``"nrrd"``, ``"mha"``, or
            ``"dicom-file"`` for a file whose DICOM header is damaged (always with a problem).
        files: the DICOM files of the series (empty for other kinds).
        modality: DICOM Modality or ``""``.
        description: SeriesDescription, or the file name for image files.
        series_uid: SeriesInstanceUID or ``""``.
        shape: (I, J, K) voxels (from the headers).
        spacing: (di, dj, dk) mm, or ``()`` when the headers cannot give it.
        orientation: axis codes such as ``"LAS"``, or ``""``.
        problem: why the series cannot be read as it is (``""`` when it looks fine).
    """

    path: Path
    kind: str
    files: tuple[Path, ...] = ()
    modality: str = ""
    description: str = ""
    series_uid: str = ""
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    orientation: str = ""
    problem: str = ""


@dataclass(frozen=True)
class SkippedFile:
    """A file in the study folder that is not a scan source, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Discovery:
    """What a study folder holds: scan sources in a stable order, and skipped files."""

    root: Path
    sources: tuple[ScanSource, ...]
    skipped: tuple[SkippedFile, ...]


def image_kind(path: Path) -> str:
    """``"nifti"``, ``"nrrd"`` or ``"mha"`` by suffix, or ``""`` for other files."""
    name = path.name.lower()
    for suffix, kind in IMAGE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return ""


def discover(folder: str | Path) -> Discovery:
    """List the scans under ``folder`` (searched recursively).

    Args:
        folder: a study root, a series folder, or a single image file.

    Returns:
        Discovery with sources sorted by path then series UID, and the skipped files with reasons.

    Raises:
        InputError: when ``folder`` does not exist.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(root, "no such file or folder")
    files = [root] if root.is_file() else _walk(root)
    sources: list[ScanSource] = []
    skipped: list[SkippedFile] = []
    dicom_by_series: dict[str, list[tuple[Path, object]]] = defaultdict(list)
    for path in files:
        kind = image_kind(path)
        if kind:
            sources.append(_image_file_source(path, kind))
            continue
        if path.name.lower().endswith(DATA_COMPANION_SUFFIXES):
            skipped.append(SkippedFile(path, "data file of a header/data pair; read through its header"))
            continue
        outcome = _classify_dicom(path)
        if isinstance(outcome, SkippedFile):
            skipped.append(outcome)
        elif isinstance(outcome, ScanSource):
            sources.append(outcome)
        else:
            dicom_by_series[str(outcome.SeriesInstanceUID)].append((path, outcome))
    for series_uid, members in dicom_by_series.items():
        sources.append(_series_source(series_uid, members))
    sources.sort(key=lambda source: (str(source.path), source.series_uid))
    for item in skipped:
        logger.info("skipped %s: %s", item.path, item.reason)
    return Discovery(root=root, sources=tuple(sources), skipped=tuple(skipped))


def _problem(error: InputError) -> str:
    """The reason and hint of a reader's error, for ``ScanSource.problem``."""
    return f"{error.reason} (hint: {error.hint})" if error.hint else error.reason


def _walk(root: Path) -> list[Path]:
    """Every file under ``root`` in a stable order, hidden files and folders excluded."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(Path(folder) / name for name in sorted(names) if not name.startswith("."))
    return found


def _image_file_source(path: Path, kind: str) -> ScanSource:
    """Header facts of a NIfTI/NRRD/MHA file; a bad header becomes the source's problem."""
    try:
        shape, affine = nifti_grid(path) if kind == "nifti" else sitk_grid(path)
    except InputError as error:
        return ScanSource(path=path, kind=kind, description=path.name, problem=_problem(error))
    return ScanSource(
        path=path,
        kind=kind,
        description=path.name,
        shape=tuple(shape),
        spacing=spacing_from_affine(affine),
        orientation=orientation_codes(affine),
    )


def _classify_dicom(path: Path) -> SkippedFile | ScanSource | object:
    """A skipped file, an enhanced multi-frame source, or the header of a series member."""
    try:
        header = read_dicom_header(path)
    except InputError as error:
        return ScanSource(path=path, kind="dicom-file", description=path.name, problem=_problem(error))
    if header is None:
        return SkippedFile(path, "not a DICOM file or a known image format")
    if path.name.upper() == "DICOMDIR" or "DirectoryRecordSequence" in header:
        return SkippedFile(path, "a DICOMDIR index, not an image")
    modality = str(header.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        return SkippedFile(path, NON_IMAGE_MODALITIES[modality])
    if "PixelData" not in header and "FloatPixelData" not in header and "Rows" not in header:
        return SkippedFile(path, "a DICOM object without pixel data")
    if "SeriesInstanceUID" not in header:
        return SkippedFile(path, "DICOM image without SeriesInstanceUID; cannot be grouped")
    if "PerFrameFunctionalGroupsSequence" in header:
        description = str(header.get("SeriesDescription", ""))
        try:
            volume = read_enhanced_dicom(path)
        except InputError as error:
            return ScanSource(
                path=path,
                kind="dicom-enhanced",
                modality=modality,
                description=description,
                series_uid=str(header.SeriesInstanceUID),
                problem=_problem(error),
            )
        return ScanSource(
            path=path,
            kind="dicom-enhanced",
            modality=modality,
            description=description,
            series_uid=str(header.SeriesInstanceUID),
            shape=volume.spatial_shape,
            spacing=volume.spacing,
            orientation=volume.orientation,
        )
    return header


def _series_source(series_uid: str, members: list[tuple[Path, object]]) -> ScanSource:
    """Summarise one series from its headers; a failed check becomes the source's problem."""
    members = sorted(members, key=lambda member: member[0])
    files = tuple(path for path, _ in members)
    first = members[0][1]
    folders = {path.parent for path in files}
    if len(files) == 1:
        folder = files[0]  # a lone slice: name the file itself
    elif len(folders) == 1:
        folder = folders.pop()
    else:
        folder = Path(os.path.commonpath([str(p) for p in files]))
    base = dict(
        path=folder,
        kind="dicom-series",
        modality=str(first.get("Modality", "")),
        description=str(first.get("SeriesDescription", "")),
        series_uid=series_uid,
    )
    try:
        checked = check_series_files(folder, files, [header for _, header in members])
    except InputError as error:
        # The files stay with the source, so reading it raises the reader's own error.
        return ScanSource(**base, files=files, problem=_problem(error))
    affine = checked.geometry.affine
    return ScanSource(
        **base,
        files=checked.files,
        shape=tuple(checked.geometry.shape),
        spacing=spacing_from_affine(affine),
        orientation=orientation_codes(affine),
    )
