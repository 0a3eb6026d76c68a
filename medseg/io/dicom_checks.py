"""Loud checks of DICOM slice stacks, on headers only (no pixels).

Each failed check raises ``InputError(series or file, reason, hint)``. Per-object checks
(non-image objects, colour, localizer, missing decoder, truncated pixels) are in
``medseg.io.dicom_objects``; geometry tag checks in ``medseg.io.dicom_headers``. Tolerances:

* orientation: every ImageOrientationPatient cosine within ``ORIENTATION_TOLERANCE`` (1e-4,
  as dcm2niix's ``isSameFloatGE``) of the first slice's;
* in-plane: Rows/Columns identical; PixelSpacing within ``PIXEL_SPACING_TOLERANCE_MM`` (1e-4 mm);
* duplicate position: two slices closer than ``DUPLICATE_TOLERANCE_MM`` (0.01 mm) along the normal;
  when their EchoTime / TemporalPositionIdentifier / AcquisitionNumber / ... differ it is
  reported as a 4D or multi-echo series instead;
* missing slice: a step larger than ``MISSING_SLICE_FACTOR`` (1.5) x the median step (the
  median of the steps within 1.5x the smallest, so gaps cannot inflate it);
* uneven spacing: a step off that median by more than max(1 % of it, 0.01 mm);
* tilt / shear: a slice position off the line through the first one along the normal by
  more than ``SHEAR_TOLERANCE_MM`` (0.02 mm); named gantry tilt when GantryDetectorTilt != 0;
* too few slices: fewer than ``MIN_SLICES`` (3) unless the caller asks for fewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medseg.errors import InputError
from medseg.io.dicom_geometry import affine_from_plane
from medseg.io.dicom_headers import (
    SliceHeader,
    frame_headers,
    read_dicom_header,
    remembered,
    slice_header,
)
from medseg.io.dicom_objects import check_image_object
from medseg.types import orientation_codes, spacing_from_affine

MIN_SLICES = 3
MISSING_SLICE_FACTOR = 1.5
SPACING_RELATIVE_TOLERANCE = 0.01
SPACING_ABSOLUTE_TOLERANCE_MM = 0.01
DUPLICATE_TOLERANCE_MM = 0.01
SHEAR_TOLERANCE_MM = 0.02
ORIENTATION_TOLERANCE = 1e-4
PIXEL_SPACING_TOLERANCE_MM = 1e-4

@dataclass(frozen=True, eq=False)
class StackGeometry:
    """A checked slice stack.

    Attributes:
        order: indices into the input headers, in k order (ascending along the normal).
        affine: shape (4, 4), voxel -> RAS+ mm (dcm2niix layout, see medseg.io.dicom_geometry).
        shape: (I, J, K) = (Columns, Rows, number of slices).
        slice_spacing: mm between slices along the normal.
    """

    order: tuple[int, ...]
    affine: np.ndarray
    shape: tuple[int, int, int]
    slice_spacing: float


def _check_uniform(where: str | Path, headers: Sequence[SliceHeader]) -> None:
    first = headers[0]
    sizes = sorted({(h.rows, h.columns) for h in headers})
    if len(sizes) > 1:
        raise InputError(where, f"slices of different sizes (Rows x Columns {sizes}) in one series",
                         "the series mixes images; export the intended series alone")
    directions = np.array([np.concatenate([h.row_cosine, h.column_cosine]) for h in headers])
    deviation = np.abs(directions - directions[0]).max(axis=1)
    if deviation.max() > ORIENTATION_TOLERANCE:
        other = headers[int(deviation.argmax())]
        raise InputError(
            where,
            f"ImageOrientationPatient varies within the series ({Path(first.source).name} vs "
            f"{Path(other.source).name} differ by {deviation.max():.4g})",
            "the series mixes image planes (e.g. a 3-plane localizer); pick files of one orientation",
        )
    spacings = np.array([h.pixel_spacing for h in headers])
    if np.abs(spacings - spacings[0]).max() > PIXEL_SPACING_TOLERANCE_MM:
        distinct = sorted({tuple(round(v, 4) for v in s) for s in spacings.tolist()})
        raise InputError(where, f"PixelSpacing varies within the series: {distinct}",
                         "the series mixes reconstructions; export the intended one alone")


def _duplicates(where: str | Path, headers: Sequence[SliceHeader], order: np.ndarray, along: np.ndarray) -> None:
    """Raise for slices sharing a position: 4D/multi-echo when acquisition tags differ, else duplicates."""
    steps = np.diff(along[order])
    if not np.any(steps < DUPLICATE_TOLERANCE_MM):
        return
    varying: dict[str, set[str]] = {}
    pairs = [(order[n], order[n + 1]) for n in np.flatnonzero(steps < DUPLICATE_TOLERANCE_MM)]
    for a, b in pairs:
        first, second = headers[a].acquisition, headers[b].acquisition
        for key in set(first) | set(second):
            if first.get(key) != second.get(key):
                varying.setdefault(key, set()).update({first.get(key, "-"), second.get(key, "-")})
    n_positions = len(np.unique(np.round(along / DUPLICATE_TOLERANCE_MM)))
    if varying:
        tags = "; ".join(f"{k} takes values {sorted(v)}" for k, v in sorted(varying.items()))
        raise InputError(
            where,
            f"4D / multi-echo series: {len(headers)} images at {n_positions} slice positions ({tags})",
            "choose one echo or time point: pass the files with one value of that tag",
        )
    a, b = pairs[0]
    raise InputError(
        where,
        f"duplicate slice position {along[a]:.3f} mm along the normal: {Path(headers[a].source).name} and "
        f"{Path(headers[b].source).name} ({len(pairs)} duplicate(s))",
        "the folder holds a slice twice (copied twice or two exports merged); remove the duplicates",
    )


def _check_steps(where: str | Path, along: np.ndarray) -> None:
    """Missing slices and uneven spacing, from the sorted positions along the normal (mm)."""
    steps = np.diff(along)
    # The typical step: the median of the steps within 1.5x the smallest one, so that
    # gaps cannot drag it up in a short series (4 slices minus one: steps 2.5 and 5.0).
    median = float(np.median(steps[steps <= MISSING_SLICE_FACTOR * steps.min()]))
    gap = int(np.argmax(steps))
    if steps[gap] > MISSING_SLICE_FACTOR * median:
        raise InputError(
            where,
            f"missing slice(s): a gap of {steps[gap]:.3f} mm between slices at {along[gap]:.3f} and "
            f"{along[gap + 1]:.3f} mm along the normal, where the median step is {median:.3f} mm "
            f"(about {round(steps[gap] / median) - 1} slice(s) missing)",
            "the export or transfer is incomplete; fetch the whole series again (spacing is never stretched)",
        )
    tolerance = max(SPACING_RELATIVE_TOLERANCE * median, SPACING_ABSOLUTE_TOLERANCE_MM)
    if np.abs(steps - median).max() > tolerance:
        raise InputError(
            where,
            f"uneven slice spacing: steps from {steps.min():.4f} to {steps.max():.4f} mm (median {median:.4f}, "
            f"tolerance {tolerance:.4f} mm)",
            "resample the series to even spacing (e.g. dcm2niix writes an '_Eq' image) and read that",
        )


def _check_shear(where: str | Path, positions: np.ndarray, normal: np.ndarray, gantry_tilt: float) -> None:
    """Slice positions (sorted, (K, 3) LPS mm) must lie on the line along the normal."""
    offsets = positions - positions[0]
    along = offsets @ normal
    drift = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    if drift.max() <= SHEAR_TOLERANCE_MM:
        return
    angle = float(np.degrees(np.arctan2(drift[-1], along[-1])))
    if abs(gantry_tilt) > 1e-6:
        reason = (f"gantry tilt of {gantry_tilt:g} degrees (GantryDetectorTilt): "
                  f"slices are sheared by {angle:.2f} degrees")
    else:
        reason = (f"slices are not stacked along their normal (sheared by {angle:.2f} degrees; "
                  f"largest offset {drift.max():.3f} mm)")
    raise InputError(
        where, reason, "resample onto an orthogonal grid first (dcm2niix corrects tilt and writes a '_Tilt' image)"
    )


def check_stack(where: str | Path, headers: Sequence[SliceHeader], *, min_slices: int = MIN_SLICES) -> StackGeometry:
    """Check that ``headers`` form one evenly spaced, orthogonal, complete slice stack.

    Args:
        where: the series folder or file, named in errors.
        headers: one per slice, any order.
        min_slices: fewer slices than this raise (a volume needs several).

    Returns:
        The k order (ascending along the normal; ties by InstanceNumber), affine and shape.
    """
    if len(headers) < min_slices:
        raise InputError(where, f"only {len(headers)} slice(s); a volume needs at least {min_slices}",
                         "this may be a localizer or a single image; choose the main series")
    _check_uniform(where, headers)
    first = headers[0]
    normal = first.normal
    positions = np.array([h.position for h in headers])
    along = positions @ normal
    numbers = [h.instance_number if h.instance_number is not None else n for n, h in enumerate(headers)]
    order = np.array(sorted(range(len(headers)), key=lambda n: (along[n], numbers[n])), dtype=int)
    _duplicates(where, headers, order, along)
    if len(headers) > 1:
        _check_steps(where, along[order])
        _check_shear(where, positions[order], normal, first.gantry_tilt)
        slice_spacing = float((along[order[-1]] - along[order[0]]) / (len(headers) - 1))
    else:  # one slice: dcm2niix takes SliceThickness
        slice_spacing = first.slice_thickness or first.spacing_between_slices or 1.0
    affine = affine_from_plane(
        first.row_cosine, first.column_cosine, first.pixel_spacing, slice_spacing,
        headers[order[0]].position, first.rows,
    )
    return StackGeometry(tuple(int(n) for n in order), affine, (first.columns, first.rows, len(headers)), slice_spacing)


@dataclass(frozen=True, eq=False)
class CheckedSeries:
    """A single-frame series that passed every header check.

    Attributes:
        files: slice files in k order.
        datasets: their headers (no pixels), in k order.
        geometry: order, affine and shape.
    """

    files: tuple[Path, ...]
    datasets: tuple[Dataset, ...]
    geometry: StackGeometry


def check_series_files(
    where: str | Path,
    files: Sequence[Path],
    datasets: Sequence[Dataset] | None = None,
    *,
    min_slices: int = MIN_SLICES,
) -> CheckedSeries:
    """Header pass over the files of one series: every object and stack check.

    Args:
        where: the series folder, named in errors about the whole stack.
        files: the slice files, any order.
        datasets: their headers when already read (``read_dicom_header``), else read here.
        min_slices: fewer slices raise.

    Raises:
        InputError: a file is not DICOM or not a usable image, the files span several
            series, hold multi-frame objects, or do not form one regular stack.
    """
    if not files:
        raise InputError(where, "no DICOM image files", "give a folder holding one DICOM series")
    if datasets is None:
        datasets = [read_dicom_header(path) for path in files]
    for path, dataset in zip(files, datasets):
        if dataset is None:
            raise InputError(path, "not a DICOM file", "remove it from the series or pass only the series files")
    # Discovery checks a series and the reader that follows it checks the same header objects again: once.
    return remembered("series checks", datasets, (str(where), tuple(str(path) for path in files), min_slices),
                      lambda: _check_series(where, files, datasets, min_slices))


def _check_series(where: str | Path, files: Sequence[Path], datasets: Sequence[Dataset], min_slices: int
                  ) -> CheckedSeries:
    series = sorted({str(d.get("SeriesInstanceUID", "")) for d in datasets})
    if len(series) > 1:
        raise InputError(where, f"files belong to {len(series)} different series (SeriesInstanceUID)",
                         "choose one series (medseg.io.discover lists them) and pass its files")
    for path, dataset in zip(files, datasets):
        check_image_object(path, dataset)
        if int(dataset.get("NumberOfFrames") or 1) > 1:
            raise InputError(path, "multi-frame object inside a series of files",
                             "read each multi-frame file alone (medseg.io.dicom.read_enhanced_dicom)")
    # A file may be a one-frame enhanced object, whose geometry is in its functional groups.
    headers = [
        frame_headers(path, dataset)[0] if "PerFrameFunctionalGroupsSequence" in dataset
        else slice_header(path, dataset)
        for path, dataset in zip(files, datasets)
    ]
    geometry = check_stack(where, headers, min_slices=min_slices)
    return CheckedSeries(
        files=tuple(Path(files[n]) for n in geometry.order),
        datasets=tuple(datasets[n] for n in geometry.order),
        geometry=geometry,
    )


@dataclass(frozen=True)
class SeriesSummary:
    """What discovery shows of a series, from headers only.

    Attributes:
        series_uid: SeriesInstanceUID.
        modality: e.g. ``"CT"``.
        description: SeriesDescription (never a patient identifier).
        n_slices: number of slices (K).
        shape: (I, J, K).
        spacing: mm along i, j, k.
        orientation: axis codes of the affine, e.g. ``"LAS"``.
        files: the slice files in k order.
    """

    series_uid: str
    modality: str
    description: str
    n_slices: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    orientation: str
    files: tuple[Path, ...]


def summarize_series(
    files: Sequence[Path], datasets: Sequence[Dataset] | None = None, *, min_slices: int = MIN_SLICES
) -> SeriesSummary:
    """Check one series on headers only and summarise it (no pixel data is read).

    Args:
        files: the series' slice files, any order.
        datasets: their headers, in the same order, when already read (``read_dicom_header``).
        min_slices: fewer slices raise.

    Raises:
        InputError: the same checks as ``read_dicom_series`` (except pixel-data length).
    """
    files = [Path(f) for f in files]
    where = files[0].parent if files else Path(".")
    checked = check_series_files(where, files, datasets, min_slices=min_slices)
    first = checked.datasets[0]
    return SeriesSummary(
        series_uid=str(first.get("SeriesInstanceUID", "")),
        modality=str(first.get("Modality", "")),
        description=str(first.get("SeriesDescription", "")),
        n_slices=len(checked.files),
        shape=checked.geometry.shape,
        spacing=spacing_from_affine(checked.geometry.affine),
        orientation=orientation_codes(checked.geometry.affine),
        files=checked.files,
    )
