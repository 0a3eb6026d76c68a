"""npe2 reader: scans (NIfTI, NRRD, MetaImage, DICOM series folders, enhanced DICOM) and label maps.

A file whose name says it holds labels (``seg``, ``label``, ``mask`` in its name, e.g. the
``seg.nii.gz`` written by ``medseg predict``) opens as a Labels layer; everything else as
Image layers. Layers are placed in world space (LPS mm, axes (S, P, L); see
``medseg.review.display``) with an affine, so a mask written on a scan's grid overlays it
voxel for voxel, whatever the scan's orientation. Paths medseg cannot read give None (the
reason is logged), never an exception, so napari can try its other readers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from medseg.errors import MedsegError
from medseg.io import read_labels, read_scan
from medseg.types import SourceInfo, Volume, source_name
from medseg_napari._layers import LayerData, image_layers, labels_layer

logger = logging.getLogger(__name__)

SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ima")
LABEL_NAME = re.compile(r"(^|[_.\-])(seg|segmentation|labels?|mask)([_.\-]|$)", re.IGNORECASE)


def is_label_file(path: Path) -> bool:
    """Whether the file name marks a label map (``seg.nii.gz``, ``case_labels.nrrd``, ``mask.mha``...)."""
    return bool(LABEL_NAME.search(source_name(path)))


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader for ``path`` (a file or a folder), or None when medseg cannot read it."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    candidate = Path(path)
    if candidate.is_dir() or candidate.name.lower().endswith(SCAN_SUFFIXES) or candidate.suffix == "":
        probe = read_path(candidate)
        if probe is None:
            return None
        return lambda _path: probe
    return None


def read_path(path: str | Path) -> list[LayerData] | None:
    """Layer data for one scan or label file; None (logged) when medseg cannot read it."""
    path = Path(path)
    try:
        if path.is_file() and is_label_file(path):
            labels = read_labels(path)
            reference = Volume(array=labels.array[None].astype("float32"), affine=labels.affine)
            reference = _with_source(reference, path)
            return [labels_layer(labels.array, reference, name=source_name(path), prediction=str(path))]
        return image_layers(read_scan(path))
    except MedsegError as error:
        logger.info("medseg reader: not opening %s: %s", path, error)
        return None
    except (OSError, ValueError, RuntimeError) as error:  # a reader's unforeseen failure must not reach napari
        logger.warning("medseg reader: %s could not be read (%s: %s)", path, type(error).__name__, error)
        return None


def _with_source(volume: Volume, path: Path) -> Volume:
    """The label file itself as the reference grid (its array is a stand-in, never written)."""
    return replace(volume, source=SourceInfo(path=str(path), format="labels", description=path.name))
