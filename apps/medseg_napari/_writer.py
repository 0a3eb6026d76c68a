"""npe2 writers: a Labels layer to NIfTI on its scan's grid, or to DICOM-SEG referencing its series.

The layer must have been made by medseg (the reader, the sample or a widget): its metadata
holds the source ``Volume`` and the display reorientation, so the labels go back onto the
source grid voxel for voxel. Class names come from ``metadata["medseg_class_names"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError
from medseg.io import write_labels


def _source(path: str, data: Any, meta: dict[str, Any]) -> tuple[np.ndarray, Any, tuple[str, ...]]:
    """(I, J, K) labels on the source grid, the source Volume and the class names."""
    metadata = meta.get("metadata") or {}
    volume, grid = metadata.get("medseg_volume"), metadata.get("medseg_grid")
    if volume is None or grid is None:
        raise InputError(path, f"layer '{meta.get('name', '')}' was not opened by medseg, so its scan grid is unknown",
                         "open the scan with the medseg reader and draw on the labels layer medseg adds "
                         "(Segment widget or a medseg label file)")
    labels = np.ascontiguousarray(grid.to_source(np.asarray(data)))
    names = tuple(metadata.get("medseg_class_names") or ())
    return labels, volume, names


def write_labels_nifti(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NIfTI (.nii / .nii.gz) on its scan's grid; returns the path written."""
    labels, volume, _ = _source(path, data, meta)
    return [str(write_labels(labels, path, volume))]


def write_labels_dicom_seg(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as a DICOM-SEG referencing the DICOM series it was drawn on."""
    from medseg.io.dicomseg import write_dicom_seg  # lazy: highdicom is heavy

    labels, volume, names = _source(path, data, meta)
    top = int(labels.max(initial=0))
    names = names + tuple(f"label {v}" for v in range(len(names), top + 1))
    if len(names) < 2:
        names = ("background", "label 1")
    return [str(write_dicom_seg(labels, Path(path), volume, names))]
