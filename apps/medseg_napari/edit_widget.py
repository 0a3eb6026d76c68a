"""Edit dock: brush, eraser and fill per class, undo/redo, and interpolation between edited slices.

It drives napari's own Labels tools on the segmentation layer: choosing a class sets
``selected_label``; the tool buttons set the layer's ``mode`` (``paint``, ``erase``, ``fill``,
``pan_zoom``); undo/redo are the layer's (one history for every stroke, interpolation
included). "Interpolate" fills the slices between edited slices of the chosen class in the
main view's plane (``medseg.review.interpolation``), applied through ``Labels.data_setitem``
so that one undo takes it back. Each stroke (a paint event of the layer) is counted in
``edits``, which the review log records.

Parts are attributes (``class_list``, ``tool_buttons``, ``brush_spin``, ``undo_button``,
``redo_button``, ``interpolate_button``, ``status``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtGui import QColor, QPixmap, QIcon
from qtpy.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medseg.review.interpolation import interpolation_changes
from medseg.review.planes import PLANES

TOOLS = {"brush": "paint", "eraser": "erase", "fill": "fill", "pan/zoom": "pan_zoom"}


class EditWidget(QWidget):
    """The Edit dock (see the module docstring)."""

    def __init__(self, napari_viewer: Any, views: Any = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.views = views  # OrthoViews, for the main plane; axial without it
        self.layer: Any = None
        self.edits = 0
        self.class_list = QListWidget()
        self.tool_buttons = {name: QPushButton(name) for name in TOOLS}
        self.tool_group = QButtonGroup(self)
        for button in self.tool_buttons.values():
            button.setCheckable(True)
            self.tool_group.addButton(button)
        self.tool_buttons["pan/zoom"].setChecked(True)
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 100)
        self.brush_spin.setValue(5)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.interpolate_button = QPushButton("Interpolate between edited slices")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Class"))
        layout.addWidget(self.class_list, 1)
        tools = QHBoxLayout()
        for button in self.tool_buttons.values():
            tools.addWidget(button)
        layout.addLayout(tools)
        size = QHBoxLayout()
        size.addWidget(QLabel("brush size"))
        size.addWidget(self.brush_spin)
        layout.addLayout(size)
        history = QHBoxLayout()
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        layout.addLayout(history)
        layout.addWidget(self.interpolate_button)
        layout.addWidget(self.status)

        self.class_list.currentRowChanged.connect(self._class_row_changed)
        for name, button in self.tool_buttons.items():
            button.clicked.connect(lambda _checked=False, name=name: self.set_tool(name))
        self.brush_spin.valueChanged.connect(self._brush_size)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.interpolate_button.clicked.connect(self.interpolate)

    def attach(self, layer: Any) -> None:
        """Edit this Labels layer (a newly shown case): list its classes, pan/zoom, count from zero."""
        if self.layer is not None:
            try:
                self.layer.events.paint.disconnect(self._painted)
            except (TypeError, ValueError, RuntimeError):
                pass
        self.layer = layer
        self.edits = 0
        layer.events.paint.connect(self._painted)
        layer.brush_size = self.brush_spin.value()
        names = layer.metadata.get("medseg_class_names", ())
        self.class_list.blockSignals(True)
        self.class_list.clear()
        for value, name in enumerate(names):
            if value == 0:
                continue
            pixmap = QPixmap(12, 12)
            red, green, blue, _alpha = (int(255 * c) for c in layer.colormap.map(np.array([value]))[0])
            pixmap.fill(QColor(red, green, blue))
            item = QListWidgetItem(QIcon(pixmap), f"{value}  {name}")
            self.class_list.addItem(item)
        self.class_list.blockSignals(False)
        self.set_class(max(int(layer.selected_label), 1) if names else 1)
        self.set_tool("pan/zoom")

    def set_class(self, value: int) -> None:
        """Paint with class ``value`` (1..N)."""
        if self.layer is None:
            return
        self.layer.selected_label = int(value)
        self.class_list.blockSignals(True)
        self.class_list.setCurrentRow(int(value) - 1)
        self.class_list.blockSignals(False)

    def _class_row_changed(self, row: int) -> None:
        if row >= 0:
            self.set_class(row + 1)

    def set_tool(self, name: str) -> None:
        """``"brush"``, ``"eraser"``, ``"fill"`` or ``"pan/zoom"``."""
        self.tool_buttons[name].setChecked(True)
        if self.layer is not None:
            self.layer.mode = TOOLS[name]
            self.viewer.layers.selection.active = self.layer

    def _brush_size(self, value: int) -> None:
        if self.layer is not None:
            self.layer.brush_size = int(value)

    def _painted(self, _event: Any = None) -> None:
        self.edits += 1

    def undo(self) -> None:
        """Undo the last stroke."""
        if self.layer is not None:
            self.layer.undo()

    def redo(self) -> None:
        """Redo the last undone stroke."""
        if self.layer is not None:
            self.layer.redo()

    def interpolate(self) -> list[int]:
        """Fill the slices between edited slices of the chosen class; returns the slices filled."""
        layer = self.layer
        if layer is None:
            return []
        grid = layer.metadata["medseg_grid"]
        original = grid.to_display(layer.metadata["medseg_original"])
        plane = PLANES[self.views.planes[0] if self.views is not None else "axial"]
        axis = plane.sliced_axis
        spacing = np.linalg.norm(np.asarray(grid.affine)[:3, :3], axis=0)
        sampling = [float(spacing[a]) for a in range(3) if a != axis]
        label = int(layer.selected_label)
        indices, values, filled = interpolation_changes(np.asarray(layer.data), original, label, axis, sampling)
        if values.size:
            layer.data_setitem(indices, values)
        self.status.setText(f"interpolated class {label} on {len(filled)} slice(s)" if filled
                            else "edit the class on two slices with a gap between them first")
        return filled
