"""Walk a study folder: DICOM series grouped by SeriesInstanceUID, image files, and what was skipped.

Nothing is chosen silently: every series is listed (several series in one folder
are several sources), and every file that is not used is counted with the reason.
Only headers are read here; pixels are read by ``medseg.io.read_scan``.

Robustness (a study folder is untrusted input, and one bad file must not stop a batch):

* any exception while looking at one file or one series is that file's or series' problem
  (a source with ``problem`` set, its reason the exception type and tag only), never the
  whole discovery's;
* headers are read with the limits of ``medseg.io.dicom_headers`` (kept tags only, no Deflated
  syntax, bounded sequences), and grids are checked against ``max_voxels`` here already; an
  enhanced multi-frame object is checked from its header, its pixels are not read;
* skipped files are counted per reason (``Discovery.skipped_counts``); only the first
  ``MAX_LISTED_SKIPPED`` are kept as examples, so 100,000 stray files cost counts, not lists.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.dicom import check_voxels, enhanced_geometry
from medseg.io.dicom_checks import check_series_files
from medseg.io.dicom_headers import read_dicom_header
from medseg.io.dicom_objects import DICOMDIR_SOP_CLASS
from medseg.io.redact import library_error
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
MAX_LISTED_SKIPPED = 50
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
    """What a study folder holds: scan sources in a stable order, and skipped files.

    Attributes:
        root: the folder searched.
        sources: the scans, sorted by path then series UID.
        skipped: the first ``MAX_LISTED_SKIPPED`` skipped files (examples, in walk order).
        skipped_counts: every skipped file counted by reason.
    """

    root: Path
    sources: tuple[ScanSource, ...]
    skipped: tuple[SkippedFile, ...]
    skipped_counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """How many files were skipped in all."""
        return sum(self.skipped_counts.values()) if self.skipped_counts else len(self.skipped)


def image_kind(path: Path) -> str:
    """``"nifti"``, ``"nrrd"`` or ``"mha"`` by suffix, or ``""`` for other files."""
    name = path.name.lower()
    for suffix, kind in IMAGE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return ""


def discover(folder: str | Path, *, max_voxels: int = DEFAULT_MAX_VOXELS, exclude: str | Path | None = None) -> Discovery:
    """List the scans under ``folder`` (searched recursively).

    Args:
        folder: a study root, a series folder, or a single image file.
        max_voxels: a source whose headers claim more voxels gets a problem (nothing is allocated).
        exclude: a folder under ``folder`` that is not searched (an output folder inside the input).

    Returns:
        Discovery with sources sorted by path then series UID, and the skipped files with reasons.

    Raises:
        InputError: when ``folder`` does not exist.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(root, "no such file or folder")
    files = [root] if root.is_file() else _walk(root, Path(exclude).resolve() if exclude is not None else None)
    sources: list[ScanSource] = []
    skipped: list[SkippedFile] = []
    counts: dict[str, int] = defaultdict(int)
    dicom_by_series: dict[str, list[tuple[Path, object]]] = defaultdict(list)
    for path in files:
        kind = image_kind(path)
        try:
            outcome = _classify(path, kind, max_voxels)
        except Exception as error:  # noqa: BLE001 - one file's failure is that file's problem, never the batch's
            outcome = ScanSource(path=path, kind=kind or "dicom-file", description=path.name if kind else "",
                                 problem=f"cannot be read ({library_error(error)})")
        if isinstance(outcome, SkippedFile):
            counts[outcome.reason] += 1
            if len(skipped) < MAX_LISTED_SKIPPED:
                skipped.append(outcome)
        elif isinstance(outcome, ScanSource):
            sources.append(outcome)
        else:
            dicom_by_series[str(outcome.SeriesInstanceUID)].append((path, outcome))
    for series_uid, members in dicom_by_series.items():
        try:
            sources.append(_series_source(series_uid, members, max_voxels))
        except Exception as error:  # noqa: BLE001 - a malformed header value is this series' problem
            files = tuple(sorted(path for path, _ in members))
            sources.append(ScanSource(path=files[0].parent, kind="dicom-series", files=files, series_uid=series_uid,
                                      problem=f"the headers cannot be checked ({library_error(error)})"))
    dicom_by_series.clear()  # the headers are not kept past the series checks
    sources.sort(key=lambda source: (str(source.path), source.series_uid))
    for reason, count in sorted(counts.items()):
        logger.info("skipped %d file(s): %s", count, reason)
    return Discovery(root=root, sources=tuple(sources), skipped=tuple(skipped), skipped_counts=dict(counts))


def _classify(path: Path, kind: str, max_voxels: int) -> SkippedFile | ScanSource | object:
    """An image file's source, a skipped file, or (for a series member) its header."""
    if kind:
        return _image_file_source(path, kind, max_voxels)
    if path.name.lower().endswith(DATA_COMPANION_SUFFIXES):
        return SkippedFile(path, "data file of a header/data pair; read through its header")
    return _classify_dicom(path, max_voxels)


def _problem(error: InputError) -> str:
    """The reason and hint of a reader's error, for ``ScanSource.problem``."""
    return f"{error.reason} (hint: {error.hint})" if error.hint else error.reason


def _walk(root: Path, exclude: Path | None = None) -> list[Path]:
    """Every file under ``root`` in a stable order, hidden files and folders excluded (links to folders
    are not followed)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        base = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                               and (exclude is None or (base / d).resolve() != exclude))
        found.extend(base / name for name in sorted(names) if not name.startswith("."))
    return found


def _image_file_source(path: Path, kind: str, max_voxels: int = DEFAULT_MAX_VOXELS) -> ScanSource:
    """Header facts of a NIfTI/NRRD/MHA file; a bad header becomes the source's problem."""
    try:
        shape, affine = nifti_grid(path, max_voxels=max_voxels) if kind == "nifti" else \
            sitk_grid(path, max_voxels=max_voxels)
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


def _classify_dicom(path: Path, max_voxels: int = DEFAULT_MAX_VOXELS) -> SkippedFile | ScanSource | object:
    """A skipped file, an enhanced multi-frame source, or the header of a series member."""
    try:
        header = read_dicom_header(path)
    except InputError as error:
        return ScanSource(path=path, kind="dicom-file", description=path.name, problem=_problem(error))
    if header is None:
        return SkippedFile(path, "not a DICOM file or a known image format")
    meta = getattr(header, "file_meta", None)
    dicomdir = meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS
    if path.name.upper() == "DICOMDIR" or dicomdir or "DirectoryRecordSequence" in header:
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
            geometry = enhanced_geometry(path, header, max_voxels=max_voxels)  # headers only, no pixels
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
            shape=tuple(geometry.shape),
            spacing=spacing_from_affine(geometry.affine),
            orientation=orientation_codes(geometry.affine),
        )
    return header


def _series_source(series_uid: str, members: list[tuple[Path, object]],
                   max_voxels: int = DEFAULT_MAX_VOXELS) -> ScanSource:
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
        check_voxels(folder, checked.geometry.shape, max_voxels)
    except InputError as error:
        # The files stay with the source, so reading it raises the reader's own error.
        return ScanSource(**base, files=files, problem=_problem(error))
    except Exception as error:  # noqa: BLE001 - a malformed header value is this series' problem
        return ScanSource(**base, files=files, problem=f"the headers cannot be checked ({library_error(error)})")
    affine = checked.geometry.affine
    return ScanSource(
        **base,
        files=checked.files,
        shape=tuple(checked.geometry.shape),
        spacing=spacing_from_affine(affine),
        orientation=orientation_codes(affine),
    )
