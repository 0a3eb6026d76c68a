"""Read scans and label maps from disk, whatever the format, with their exact grids.

Every function returns medseg's convention: arrays indexed (i, j, k) (scans (C, I, J, K),
labels (I, J, K)) and ``affine @ [i, j, k, 1]`` = RAS+ mm. No reorientation is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.discover import ScanSource, discover
from medseg.io.nifti import read_nifti
from medseg.io.sitk_image import SITK_FORMATS, read_sitk_image
from medseg.io.volume_checks import grid_difference
from medseg.types import LabelVolume, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")
SUPPORTED = (
    "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), "
    "a DICOM series folder or an enhanced DICOM file"
)


def read_scan(
    path: str | Path, *, max_voxels: int = DEFAULT_MAX_VOXELS, modalities: Sequence[str] = ()
) -> Volume:
    """Read one scan: a NIfTI/NRRD/MetaImage file, a DICOM series folder or an enhanced DICOM file.

    Args:
        path: the file, or the folder holding one DICOM series.
        max_voxels: refuse scans with more voxels per channel (from the header where the format allows).
        modalities: channel names when the file holds several channels (4D NIfTI, vector NRRD/MHA);
            their count must match. With one name, a single-channel scan gets that name.

    Returns:
        Volume, array (C, I, J, K), affine voxel -> RAS+ mm.

    Raises:
        InputError: missing path, empty folder, unknown format, or any problem found by the readers.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist", "check the path (and the current folder for relative paths)")
    if path.is_dir():
        return _read_folder(path, max_voxels, modalities)
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return read_nifti(path, max_voxels=max_voxels, modalities=modalities)
    if path.suffix.lower() in SITK_FORMATS:
        return read_sitk_image(path, max_voxels=max_voxels, modalities=modalities)
    if _may_be_dicom(path):
        from medseg.io.dicom import (  # lazy: pydicom is heavy
            is_dicom_file,
            read_enhanced_dicom,
        )

        if path.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(path):
            return _with_names(read_enhanced_dicom(path, max_voxels=max_voxels), modalities)
    raise InputError(path, f"unknown scan format '{path.suffix or path.name}'", f"give one of: {SUPPORTED}")


def _may_be_dicom(path: Path) -> bool:
    """DICOM files have a DICOM suffix, none, or a numeric one (UID-like names such as ``1.2.840.1234``)."""
    suffix = path.suffix.lower()
    return suffix in DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def read_source(source: ScanSource, *, max_voxels: int = DEFAULT_MAX_VOXELS, modalities: Sequence[str] = ()) -> Volume:
    """Read one source found by ``medseg.io.discover`` (a DICOM series by exactly its own files).

    A source whose headers already showed a problem is still handed to its reader, so the
    error raised is the reader's full one (reason and hint).
    """
    if source.kind == "dicom-series":
        from medseg.io.dicom import read_dicom_series  # lazy: pydicom is heavy

        volume = read_dicom_series(source.path, files=list(source.files), max_voxels=max_voxels)
        return _with_names(volume, modalities)
    if source.files and source.kind in ("nifti", "nrrd", "mha"):  # one file per modality (inference.channel_files)
        return read_case(source.files, modalities, max_voxels=max_voxels)
    return read_scan(source.path, max_voxels=max_voxels, modalities=modalities)


def _read_folder(folder: Path, max_voxels: int, modalities: Sequence[str]) -> Volume:
    """A folder must hold exactly one scan (searched recursively); medseg never picks one silently."""
    discovery = discover(folder)
    if len(discovery.sources) == 1:
        return read_source(discovery.sources[0], max_voxels=max_voxels, modalities=modalities)
    if not discovery.sources:
        if not discovery.n_skipped:
            raise InputError(folder, "the folder holds no files", "point at the folder that holds the DICOM series")
        first = discovery.skipped[0]
        raise InputError(
            folder,
            f"no scan found among {discovery.n_skipped} file(s) (e.g. {first.path.name}: {first.reason})",
            "point at the folder that holds the DICOM series, or at an image file",
        )
    listing = "; ".join(
        f"{source.kind} {source.path.name} '{source.description}'" for source in discovery.sources[:5]
    )
    raise InputError(
        folder,
        f"holds {len(discovery.sources)} scans ({listing}); medseg does not choose one silently",
        "run `medseg info` on the folder and pass the series folder or file you want",
    )


def _with_names(volume: Volume, modalities: Sequence[str]) -> Volume:
    """Give a single-channel volume its modality name; refuse a channel-count mismatch."""
    if not modalities:
        return volume
    if len(modalities) != volume.array.shape[0]:
        raise InputError(
            volume.source.path,
            f"{volume.array.shape[0]} channel(s) but {len(modalities)} modalities were given ({', '.join(modalities)})",
            "give one file per modality (read_case), or check the modalities",
        )
    return volume.with_array(volume.array, channel_names=tuple(modalities))


def read_case(
    paths: Sequence[str | Path], channel_names: Sequence[str], *, max_voxels: int = DEFAULT_MAX_VOXELS
) -> Volume:
    """Read co-registered scans (one per channel) and stack them as channels.

    A single path with several channel names is read as one multi-channel file (4D NIfTI).

    Args:
        paths: one scan per channel, in channel order.
        channel_names: the channel (modality) names, same length as ``paths``.
        max_voxels: as for ``read_scan``.

    Returns:
        Volume (C, I, J, K) on the first scan's grid; its source is the first scan's, with
        ``source.header["channel_paths"]`` listing every file.

    Raises:
        InputError: a count mismatch, a scan with several channels, or grids that differ
            (shape, or voxel positions beyond 1e-3 mm / directions beyond 1e-4), naming both files.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and len(channel_names) > 1:
        return read_scan(paths[0], max_voxels=max_voxels, modalities=channel_names)
    if not paths or len(paths) != len(channel_names):
        raise InputError(
            paths[0] if paths else "(no files)",
            f"{len(paths)} file(s) for {len(channel_names)} channel(s) ({', '.join(channel_names)})",
            "give one file per channel, in the order of the modalities",
        )
    volumes: list[Volume] = []
    for path, channel in zip(paths, channel_names):
        volume = read_scan(path, max_voxels=max_voxels, modalities=(channel,))
        if volumes:
            difference = grid_difference(
                volumes[0].affine, volumes[0].spatial_shape, volume.affine, volume.spatial_shape
            )
            if difference:
                raise InputError(
                    path,
                    f"its grid differs from that of {paths[0]} ({difference})",
                    "channels must be co-registered on one grid: resample them onto the first scan's grid",
                )
        volumes.append(volume)
    first = volumes[0]
    array = np.concatenate([v.array for v in volumes], axis=0)
    header = {**first.source.header, "channel_paths": [str(p) for p in paths]}
    source = replace(first.source, header=header)
    return Volume(array=array, affine=first.affine, channel_names=tuple(channel_names), source=source)


def read_labels(
    path: str | Path, reference: Volume | None = None, *, max_voxels: int = DEFAULT_MAX_VOXELS
) -> LabelVolume:
    """Read a label map (NIfTI, NRRD or MetaImage) and check it against its scan.

    Float files are accepted when every value is a whole number (then cast); values are
    stored as uint8, uint16 or int32, the smallest that holds them.

    Args:
        path: the label file.
        reference: the scan the labels belong to; its grid must match (shape, and voxel
            positions within 1e-3 mm).
        max_voxels: as for ``read_scan``.

    Returns:
        LabelVolume with array (I, J, K) and the file's affine (voxel -> RAS+ mm).

    Raises:
        InputError: unreadable file, several channels, non-integral or negative values,
            or a grid that does not match the reference's (naming both files).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist", "check the path of the label file")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        volume = read_nifti(path, max_voxels=max_voxels, modalities=("labels",), dtype=None)
    elif path.suffix.lower() in SITK_FORMATS and path.is_file():
        volume = read_sitk_image(path, max_voxels=max_voxels, modalities=("labels",), dtype=None)
    else:
        raise InputError(
            path, "label maps must be NIfTI, NRRD or MetaImage files", "convert the label map to .nii.gz"
        )
    values = volume.array[0]
    labels = _as_integer_labels(path, values)
    if reference is not None:
        difference = grid_difference(reference.affine, reference.spatial_shape, volume.affine, labels.shape)
        if difference:
            raise InputError(
                path,
                f"the label map's grid does not match its scan {reference.source.path or '(in memory)'} ({difference})",
                "a label map must be on its scan's grid: resample it with nearest-neighbour interpolation",
            )
    return LabelVolume(array=labels, affine=volume.affine)


def _as_integer_labels(path: Path, values: np.ndarray) -> np.ndarray:
    """Integer labels (I, J, K) in the smallest unsigned (or int32) type that holds them."""
    if values.size == 0:
        raise InputError(path, "the label map is empty", "export it again")
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise InputError(path, "the label map holds NaN or infinite values", "export it again")
        whole = values == np.round(values)
        if not whole.all():
            bad = int(whole.size - np.count_nonzero(whole))
            raise InputError(
                path,
                f"{bad:,} voxels hold non-integer values (e.g. {values[~whole].flat[0]!r}): not a label map",
                "labels must be whole numbers: was it resampled with linear interpolation? use nearest-neighbour",
            )
    low, high = values.min(), values.max()
    if low < 0:
        raise InputError(path, f"negative label value {low}", "labels are 0 (background) and 1..N")
    for candidate in (np.uint8, np.uint16, np.int32):
        if high <= np.iinfo(candidate).max:
            return np.ascontiguousarray(values, dtype=candidate)
    raise InputError(path, f"label value {high} is too large", "labels are 0 (background) and 1..N")
