"""Putting a segmentation result into a viewer: contour labels, uncertainty image, class table rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.review.class_table import ClassRow, class_table
from medseg.review.uncertainty_view import near_labels
from medseg.types import Volume
from medseg_napari._layers import add_layer, grid_of, labels_layer, uncertainty_layer

LABELS_NAME = "segmentation"
UNCERTAINTY_NAME = "uncertainty"


@dataclass
class ShownResult:
    """The layers of one shown result and its class table."""

    labels: Any
    uncertainty: Any | None
    rows: list[ClassRow]
    volume: Volume


def _replace(viewer: Any, name: str) -> None:
    if name in viewer.layers:
        viewer.layers.remove(name)


def show_result(
    viewer: Any,
    volume: Volume,
    labels: np.ndarray,
    *,
    class_names: Sequence[str],
    colors: Sequence[Sequence[float]] = (),
    uncertainty: np.ndarray | None = None,
    qc_flags: Sequence[str] = (),
    prediction: str | None = None,
    original: np.ndarray | None = None,
    near_contours: bool = True,
) -> ShownResult:
    """Add (replacing earlier ones) a contour Labels layer and an uncertainty layer for (I, J, K) results.

    Args:
        viewer: the napari viewer.
        volume: the scan the results are on (its grid).
        labels: (I, J, K) labels to show (and edit).
        class_names, colors: from the model card (index = label value).
        uncertainty: optional (I, J, K) map, 0..1.
        qc_flags: the case's QC flags (listed in the class table).
        prediction: the file the labels came from (kept in the layer's metadata).
        original: the model's labels, when ``labels`` are an earlier review of them.
        near_contours: show the uncertainty only near labelled voxels (``medseg.review.uncertainty_view``);
            both maps stay in the layer's metadata for ``show_uncertainty_near``.
    """
    _replace(viewer, LABELS_NAME)
    _replace(viewer, UNCERTAINTY_NAME)
    grid = grid_of(volume)
    shown_uncertainty = None
    if uncertainty is not None:
        near = near_labels(uncertainty, labels, volume.spacing)
        shown_uncertainty = add_layer(viewer, uncertainty_layer(near if near_contours else uncertainty, volume,
                                                                name=UNCERTAINTY_NAME))
        shown_uncertainty.metadata["medseg_uncertainty"] = {"near": grid.to_display(near),
                                                            "full": grid.to_display(uncertainty)}
    layer = add_layer(viewer, labels_layer(labels, volume, name=LABELS_NAME, class_names=class_names,
                                           colors=colors, prediction=prediction))
    if original is not None:
        layer.metadata["medseg_original"] = np.asarray(original).copy()
    layer.contour = 1
    viewer.layers.selection.active = layer
    rows = class_table(layer.data, layer.metadata["medseg_class_names"], grid.affine,
                       uncertainty=None if uncertainty is None else grid.to_display(uncertainty),
                       qc_flags=qc_flags, axis=0)
    return ShownResult(labels=layer, uncertainty=shown_uncertainty, rows=rows, volume=volume)


def show_uncertainty_near(layer: Any, near: bool) -> None:
    """Show an uncertainty layer's map near the contours only (True) or everywhere (False)."""
    maps = layer.metadata["medseg_uncertainty"]
    layer.data = maps["near" if near else "full"]


def jump_to_class(viewer: Any, layer: Any, row: ClassRow) -> tuple[float, ...] | None:
    """Move the viewer to the class's largest slice (display axis 0), centred on it; returns the world point."""
    if row.largest_slice is None:
        return None
    plane = np.asarray(layer.data[row.largest_slice]) == row.label
    j, k = (float(v) for v in np.argwhere(plane).mean(axis=0))
    world = layer.data_to_world((float(row.largest_slice), j, k))
    world = tuple(float(v) for v in world)
    viewer.dims.set_point(0, world[0])
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 moved it
    camera.center = world
    return world
