"""Layer data for napari from medseg volumes: reoriented arrays, world affines, class colours, metadata.

World convention: see ``medseg.review.display`` (LPS mm, axes (S, P, L); the default 2D
view is axial, radiological). Layer metadata keys, read back by the writer and the widgets:
``medseg_volume`` (the source ``Volume``), ``medseg_grid`` (its ``DisplayGrid``),
``medseg_class_names``, ``medseg_original`` (labels layers: the labels as opened, on the
source grid) and ``medseg_prediction`` (the file they came from, if any).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from medseg.review.display import DisplayGrid, display_grid
from medseg.types import Volume, source_name

# Distinct, colour-blind-friendly defaults (Okabe-Ito) when no model card gives colours.
DEFAULT_COLORS = (
    (0.90, 0.62, 0.0), (0.34, 0.71, 0.91), (0.0, 0.62, 0.45), (0.94, 0.89, 0.26),
    (0.0, 0.45, 0.70), (0.84, 0.37, 0.0), (0.80, 0.47, 0.65),
)
LayerData = tuple[Any, dict[str, Any], str]


def grid_of(volume: Volume) -> DisplayGrid:
    """The display grid of a volume."""
    return display_grid(volume.affine, volume.spatial_shape)


def class_colors(n_labels: int, colors: Sequence[Sequence[float]] = ()) -> list[tuple[float, float, float]]:
    """RGB (0..1) for labels 0..n_labels-1: the given ones, then the defaults in turn."""
    result = [tuple(float(v) for v in c[:3]) for c in colors[:n_labels]]
    while len(result) < n_labels:
        result.append(DEFAULT_COLORS[(len(result) - 1) % len(DEFAULT_COLORS)])
    return result


def label_colormap(class_names: Sequence[str], colors: Sequence[Sequence[float]] = ()) -> DirectLabelColormap:
    """napari colormap: background transparent, label v in colour v (model card or defaults)."""
    n_labels = max(len(class_names), 2)
    rgb = class_colors(n_labels, colors)
    color_dict: dict[int | None, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for value in range(1, n_labels):
        color_dict[value] = (*rgb[value], 1.0)
    return DirectLabelColormap(color_dict=color_dict)


def image_layers(volume: Volume, name: str | None = None) -> list[LayerData]:
    """One Image layer per channel, reoriented for display, with the world affine."""
    grid = grid_of(volume)
    base = name or source_name(volume.source.path) or "scan"
    layers = []
    for index, channel in enumerate(volume.channel_names):
        data = grid.to_display(volume.array[index])
        finite = data[np.isfinite(data)]
        low, high = (np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0))
        kwargs = {
            "name": base if len(volume.channel_names) == 1 else f"{base} {channel}",
            "affine": grid.affine,
            "colormap": "gray",
            "contrast_limits": (float(low), float(high) if high > low else float(low) + 1.0),
            "metadata": {"medseg_volume": volume, "medseg_grid": grid, "medseg_channel": index},
        }
        layers.append((data, kwargs, "image"))
    return layers


def labels_layer(
    labels: np.ndarray,
    volume: Volume,
    *,
    name: str,
    class_names: Sequence[str] = (),
    colors: Sequence[Sequence[float]] = (),
    prediction: str | None = None,
) -> LayerData:
    """A Labels layer for (I, J, K) labels on ``volume``'s grid.

    The layer's data is a reoriented copy (editing it never touches ``labels``); the
    original is kept in ``metadata["medseg_original"]`` to tell what the reviewer changed.
    """
    grid = grid_of(volume)
    labels = np.asarray(labels)
    names = tuple(class_names) or ("background", *(f"label {v}" for v in range(1, int(labels.max(initial=0)) + 1)))
    data = np.ascontiguousarray(grid.to_display(labels))
    kwargs = {
        "name": name,
        "affine": grid.affine,
        "colormap": label_colormap(names, colors),
        "features": {"index": np.arange(len(names)), "class": list(names)},
        "opacity": 0.9,
        "metadata": {
            "medseg_volume": volume, "medseg_grid": grid, "medseg_class_names": names,
            "medseg_original": labels.copy(), "medseg_prediction": prediction,
        },
    }
    return (data, kwargs, "labels")


def uncertainty_layer(uncertainty: np.ndarray, volume: Volume, *, name: str = "uncertainty") -> LayerData:
    """An Image layer for an (I, J, K) uncertainty map (0..1), inferno colours, additive blending."""
    grid = grid_of(volume)
    kwargs = {
        "name": name,
        "affine": grid.affine,
        "colormap": "inferno",
        "contrast_limits": (0.0, 1.0),
        "opacity": 0.5,
        "blending": "additive",
        "metadata": {"medseg_volume": volume, "medseg_grid": grid},
    }
    return (grid.to_display(np.asarray(uncertainty, dtype=np.float32)), kwargs, "image")


def source_labels(layer: Any) -> np.ndarray:
    """A Labels layer's current data back on its source grid (I, J, K)."""
    grid: DisplayGrid = layer.metadata["medseg_grid"]
    return np.ascontiguousarray(grid.to_source(np.asarray(layer.data)))


def add_layer(viewer: Any, layer_data: LayerData) -> Any:
    """Add a layer-data tuple to a viewer; returns the layer."""
    data, kwargs, kind = layer_data
    return getattr(viewer, f"add_{kind}")(data, **kwargs)
