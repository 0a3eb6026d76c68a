"""Three linked reading planes (axial, coronal, sagittal) in one napari window.

napari's multiple-viewer pattern (its example "multiple_viewer_widget"): the main canvas
shows the main plane (axial at first) and two more viewers (a ``ViewerModel`` with its own
``QtViewer`` each) in a splitter show the other two planes (``medseg.review.planes``:
radiological orientation). The three share

* layers: each layer of the main viewer is mirrored into the others as a copy over the same
  array; display properties (visibility, opacity, contrast limits, colours, contours...)
  follow the main layer, and labels painted, filled or undone in the main canvas refresh the
  copies. Editing happens in the main canvas only (the copies stay in pan/zoom mode), so one
  undo history holds every stroke; Alt-1/2/3 puts the axial, coronal or sagittal plane there.
* the slice position: ``dims.point`` (world mm) is the same in all three, so the planes
  always cross at one point;
* the cursor: a click (press and release without moving) in any view moves that shared point
  to the clicked spot; every view then shows the slice through it.

Oblique scans: the display grid (``medseg.review.display``) leaves at most a small rotation in
a layer's affine. The main view slices it as napari does (the in-plane rotation is exact); the
side views show the scan axis-aligned about its centre (``axis_aligned``), because napari's
slicing along their axes ignores the rotation and would miss the volume. Their picture of an
oblique scan is therefore off by that rotation (a few millimetres at the edges); straight
scans are exact in all three views.

Shift-drag in any view (in the main one while its active layer pans and zooms) calls
``window_drag(dx, dy)`` with the screen pixels moved: the Window dock sets it to adjust
window/level. Alt-V switches between the three views and a single large main view.

Parts are attributes (``side_models``, ``side_viewers``, ``planes``) and every action is a
method, so tests drive them without clicks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.components.viewer_model import ViewerModel
from napari.layers import Labels, Layer
from napari.qt import QtViewer
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QSplitter

from medseg.review.planes import PLANES, other_planes

SYNCED_PROPERTIES = ("visible", "opacity", "blending", "contrast_limits", "gamma", "colormap", "contour",
                     "show_selected_label", "selected_label")
LABEL_REFRESH_EVENTS = ("paint", "labels_update", "set_data")
SHORTCUTS = {"Alt-V": "toggle_layout", "Alt-1": "main_axial", "Alt-2": "main_coronal", "Alt-3": "main_sagittal"}
CLICK_TOLERANCE_PX = 3.0
MIN_VIEW_PX = (240, 240)


def _camera(model: Any) -> Any:
    """The 2D camera model (napari >= 0.9 keeps it in ``scene``)."""
    return model.scene.camera if hasattr(model, "scene") else model.camera


def axis_aligned(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``affine`` without its (small, oblique) rotation: the column lengths on the diagonal, centred
    on the same world point. napari slices a rotated layer along a side view's axis wrongly (it
    ignores the rotation's cross terms, which a world point far from the origin turns into an
    empty slice), so side views show an oblique scan this way (see the module docstring)."""
    affine = np.asarray(affine, dtype=float)
    if np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        return affine
    linear = np.diag(np.linalg.norm(affine[:3, :3], axis=0) * np.sign(np.diag(affine[:3, :3]) + 1e-12))
    centre = (np.asarray(shape[-3:], dtype=float) - 1) / 2
    aligned = np.eye(4)
    aligned[:3, :3] = linear
    aligned[:3, 3] = affine[:3, :3] @ centre + affine[:3, 3] - linear @ centre
    return aligned


def mirror_layer(layer: Layer) -> Layer:
    """A copy of ``layer`` over the same data array, without its metadata, for a side view."""
    data, state, kind = layer.as_layer_data_tuple()
    state = {**state, "metadata": {"medseg_mirror_of": layer.name}}
    if np.ndim(data) == 3 and "affine" in state:
        matrix = getattr(state["affine"], "affine_matrix", state["affine"])
        state["affine"] = axis_aligned(matrix, np.shape(data))
    return Layer.create(data, state, kind)


class OrthoViews(QSplitter):
    """The two side views and what links them to the main viewer (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.viewer = napari_viewer
        self.planes = ["axial", *other_planes("axial")]  # main, side 1, side 2
        self.side_models = [ViewerModel(title=name) for name in self.planes[1:]]
        self.side_viewers = [QtViewer(model) for model in self.side_models]
        for qt_viewer in self.side_viewers:
            qt_viewer.setMinimumSize(*MIN_VIEW_PX)
            self.addWidget(qt_viewer)
        self.window_drag: Callable[[float, float], None] | None = None
        self.dock: Any = None  # the dock widget holding this splitter, once docked
        self._block = False

        layers = self.viewer.layers
        layers.events.inserted.connect(self._layer_inserted)
        layers.events.removed.connect(self._layer_removed)
        layers.events.moved.connect(self._layer_moved)
        layers.events.begin_batch.connect(self._begin_batch)  # one scene-graph clean-up per batch in every view
        layers.events.end_batch.connect(self._end_batch)
        for model in self.models:
            model.dims.events.point.connect(self._step_changed)
            model.mouse_drag_callbacks.append(self._click_to_point)
            model.mouse_drag_callbacks.append(self._drag_window)
        self.viewer.events.reset_view.connect(lambda _event=None: self._reset_sides())
        for index, layer in enumerate(layers):
            self._insert_copies(index, layer)
        self.set_main_plane("axial")
        self.bind_keys()
        self.viewer.window._qt_viewer.installEventFilter(self)  # release the side viewers when napari closes

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """When the main canvas closes, close the side viewers too."""
        if event.type() == QEvent.Type.Close:
            self.release()
        return False

    def release(self) -> None:
        """Close the side viewers and drop the callbacks on the main viewer (napari is closing)."""
        for callbacks in (self.viewer.mouse_drag_callbacks,):
            for callback in (self._click_to_point, self._drag_window):
                if callback in callbacks:
                    callbacks.remove(callback)
        for qt_viewer in self.side_viewers:
            qt_viewer.close()
            qt_viewer.setParent(None)
        self.side_viewers = []
        for model in self.side_models:
            model.layers.clear()

    # --- structure ------------------------------------------------------------------------
    @property
    def models(self) -> list[Any]:
        """The main viewer and the two side models, in the order of ``planes``."""
        return [self.viewer, *self.side_models]

    def bind_keys(self) -> None:
        """Bind the layout keys on the main viewer (and the side models, so they work wherever the mouse is)."""
        for key, method in SHORTCUTS.items():
            action = getattr(self, method)
            for model in self.models:
                model.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)

    def canvases(self) -> list[Any]:
        """The Qt widgets of the three canvases: main first."""
        main = self.viewer.window._qt_viewer.canvas.native
        return [main, *(viewer.canvas.native for viewer in self.side_viewers)]

    def visible_canvases(self) -> int:
        """How many canvases are on screen."""
        return sum(1 for canvas in self.canvases() if canvas.isVisible())

    # --- layout ---------------------------------------------------------------------------
    @property
    def single(self) -> bool:
        """True when only the main view is shown."""
        holder = self.dock if self.dock is not None else self
        return holder.isHidden()

    def set_single(self, single: bool) -> None:
        """One large main view (True) or three views (False)."""
        holder = self.dock if self.dock is not None else self
        holder.setVisible(not single)
        if not single:
            self._reset_sides()

    def toggle_layout(self) -> None:
        """Switch between a single large view and three views."""
        self.set_single(not self.single)

    def set_main_plane(self, plane: str) -> None:
        """Show ``plane`` in the main canvas (where editing happens) and the other two beside it."""
        self.planes = [plane, *other_planes(plane)]
        for model, name in zip(self.models, self.planes):
            self._orient(model, name)
        self.viewer.reset_view()
        self._reset_sides()

    def main_axial(self) -> None:
        """Axial in the main canvas."""
        self.set_main_plane("axial")

    def main_coronal(self) -> None:
        """Coronal in the main canvas."""
        self.set_main_plane("coronal")

    def main_sagittal(self) -> None:
        """Sagittal in the main canvas."""
        self.set_main_plane("sagittal")

    def _orient(self, model: Any, name: str) -> None:
        plane = PLANES[name]
        if model.dims.ndim >= 3:
            model.dims.order = tuple(range(model.dims.ndim - 3)) + tuple(
                axis + model.dims.ndim - 3 for axis in plane.order)
        _camera(model).orientation2d = plane.orientation
        model.title = name

    def _reset_sides(self) -> None:
        for model, name in zip(self.side_models, self.planes[1:]):
            self._orient(model, name)
            model.reset_view()

    # --- layers ---------------------------------------------------------------------------
    def _insert_copies(self, index: int, layer: Layer) -> None:
        for model in self.side_models:
            model.layers.insert(index, mirror_layer(layer))
        for name in SYNCED_PROPERTIES:
            emitter = getattr(layer.events, name, None)
            if emitter is not None:
                emitter.connect(lambda event, name=name: self._sync_property(event.source, name))
        if isinstance(layer, Labels):
            for name in LABEL_REFRESH_EVENTS:
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    emitter.connect(lambda event: self._refresh_copies(event.source))
        layer.events.data.connect(lambda event: self._sync_data(event.source))

    def _layer_inserted(self, event: Any) -> None:
        self._insert_copies(event.index, event.value)
        if self.viewer.dims.ndim >= 3:
            self._orient(self.viewer, self.planes[0])
            self._reset_sides()
            self._step_changed_from(self.viewer)

    def _begin_batch(self, _event: Any = None) -> None:
        for model in self.side_models:
            model.layers.events.begin_batch()

    def _end_batch(self, _event: Any = None) -> None:
        for model in self.side_models:
            model.layers.events.end_batch()

    def _layer_removed(self, event: Any) -> None:
        for model in self.side_models:
            if event.index < len(model.layers):
                model.layers.pop(event.index)

    def _layer_moved(self, event: Any) -> None:
        destination = event.new_index if event.new_index < event.index else event.new_index + 1
        for model in self.side_models:
            model.layers.move(event.index, destination)

    def copies(self, layer: Layer) -> list[Layer]:
        """The side views' copies of a main-viewer layer."""
        index = self.viewer.layers.index(layer)
        return [model.layers[index] for model in self.side_models if index < len(model.layers)]

    def _sync_property(self, layer: Layer, name: str) -> None:
        if layer not in self.viewer.layers:
            return
        value = getattr(layer, name)
        for copy in self.copies(layer):
            if getattr(copy, name, None) is not value:
                setattr(copy, name, value)

    def _refresh_copies(self, layer: Layer) -> None:
        if layer in self.viewer.layers:
            for copy in self.copies(layer):
                copy.refresh()

    def _sync_data(self, layer: Layer) -> None:
        if layer in self.viewer.layers:
            for copy in self.copies(layer):
                if copy.data is not layer.data:
                    copy.data = layer.data

    # --- slice position and cursor --------------------------------------------------------
    def _step_changed(self, event: Any) -> None:
        self._step_changed_from(event.source)

    def _step_changed_from(self, dims_or_model: Any) -> None:
        if self._block:
            return
        dims = getattr(dims_or_model, "dims", dims_or_model)
        point = tuple(dims.point)
        try:
            self._block = True
            for model in self.models:
                if model.dims is not dims and model.dims.ndim == len(point) and tuple(model.dims.point) != point:
                    model.dims.point = point
        finally:
            self._block = False

    def point(self) -> tuple[float, ...]:
        """The shared point (world mm, axes (S, P, L))."""
        return tuple(float(v) for v in self.viewer.dims.point)

    def set_point(self, world: Any) -> None:
        """Move the shared point (world mm): every view shows the slice through it."""
        world = [float(v) for v in world]
        axes = list(range(len(world)))
        self.viewer.dims.set_point(axes, world)

    def _click_to_point(self, model: Any, event: Any) -> Any:
        """A click without a drag (left button, no modifier) moves the shared point there."""
        if event.button != 1 or event.modifiers:
            return
        start = np.asarray(event.pos, dtype=float)
        moved = False
        yield
        while event.type == "mouse_move":
            moved = moved or float(np.hypot(*(np.asarray(event.pos, dtype=float) - start))) > CLICK_TOLERANCE_PX
            yield
        if not moved:
            self.set_point(event.position)

    def _drag_window(self, model: Any, event: Any) -> Any:
        """Shift-drag: window/level through ``window_drag`` (main view only while its active layer pans)."""
        if "Shift" not in event.modifiers or event.button != 1 or self.window_drag is None:
            return
        active = self.viewer.layers.selection.active
        if model is self.viewer and active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
            return
        last = np.asarray(event.pos, dtype=float)
        yield
        while event.type == "mouse_move":
            now = np.asarray(event.pos, dtype=float)
            dx, dy = now - last
            last = now
            self.window_drag(float(dx), float(dy))
            yield
