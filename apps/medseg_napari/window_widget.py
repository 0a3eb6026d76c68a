"""Window dock: window/level presets for the scan's modality, exact values, and a drag to adjust.

CT offers the reading presets of ``medseg.review.windowing`` (brain, subdural, stroke, bone,
lung, soft tissue/abdomen) and the automatic window; MR and unknown modalities the automatic
(percentile) window. The values are shown in the dock and on the canvas ("W 80 L 40") and can
be typed; Shift-drag in any view adjusts them (``OrthoViews.window_drag``). The window acts on
the scan layer (``scan``, else the first medseg image layer) through its contrast limits, which
the side views follow.

Parts are attributes (``preset_combo``, ``level_spin``, ``width_spin``, ``values_label``).
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QWidget

from medseg.review.windowing import Window, default_preset, drag_window, modality_of, preset_window, presets

SCAN_LAYER = "scan"
SPIN_RANGE = 1e6


def _text_overlay(viewer: Any) -> Any:
    """The canvas text overlay (napari >= 0.9: ``viewer.canvas.overlays.text``)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return overlays.text if overlays is not None and hasattr(overlays, "text") else viewer.text_overlay


class WindowWidget(QWidget):
    """The Window dock (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.modality = ""
        self.preset_combo = QComboBox()
        self.level_spin = QDoubleSpinBox()
        self.width_spin = QDoubleSpinBox()
        for spin in (self.level_spin, self.width_spin):
            spin.setRange(-SPIN_RANGE, SPIN_RANGE)
            spin.setDecimals(1)
            spin.setKeyboardTracking(False)
        self.width_spin.setMinimum(0.1)
        self.values_label = QLabel("")
        layout = QFormLayout(self)
        layout.addRow("Preset", self.preset_combo)
        layout.addRow("Level", self.level_spin)
        layout.addRow("Width", self.width_spin)
        layout.addRow(self.values_label)
        layout.addRow(QLabel("Shift-drag in a view: right/left width, down/up level"))
        self.preset_combo.activated.connect(lambda index: self.set_preset(self.preset_combo.itemText(index)))
        self.level_spin.valueChanged.connect(lambda _value: self._typed())
        self.width_spin.valueChanged.connect(lambda _value: self._typed())
        self._updating = False
        self._watched: Any = None

    def _limits_changed(self, event: Any) -> None:
        if not self._updating and event.source in self.viewer.layers:
            self._show(Window.from_limits(*event.source.contrast_limits))

    def scan_layer(self) -> Any:
        """The layer the window acts on, or None."""
        if SCAN_LAYER in self.viewer.layers:
            return self.viewer.layers[SCAN_LAYER]
        for layer in self.viewer.layers:
            if layer._type_string == "image" and "medseg_volume" in layer.metadata and layer.name != "uncertainty":
                return layer
        return None

    def current(self) -> Window | None:
        """The scan layer's window."""
        layer = self.scan_layer()
        return None if layer is None else Window.from_limits(*layer.contrast_limits)

    def for_case(self, modality: str = "") -> None:
        """A new scan is shown: offer its modality's presets and apply the default one."""
        layer = self.scan_layer()
        if layer is None:
            return
        volume = layer.metadata.get("medseg_volume")
        declared = modality or (volume.source.modality if volume is not None else "")
        self.modality = modality_of(declared, layer.data)
        if layer is not self._watched:  # values typed elsewhere (napari's contrast slider) show here too
            layer.events.contrast_limits.connect(self._limits_changed)
            self._watched = layer
        self.preset_combo.clear()
        self.preset_combo.addItems(list(presets(self.modality)))
        self.set_preset(default_preset(self.modality))

    def set_preset(self, name: str) -> Window | None:
        """Apply a preset by name."""
        layer = self.scan_layer()
        if layer is None:
            return None
        window = preset_window(name, layer.data)
        index = self.preset_combo.findText(name)
        if index >= 0:
            self.preset_combo.setCurrentIndex(index)
        return self.set_window(window)

    def set_window(self, window: Window) -> Window | None:
        """Apply a window to the scan layer and show its values."""
        layer = self.scan_layer()
        if layer is None:
            return None
        self._updating = True
        try:
            layer.contrast_limits = window.limits
        finally:
            self._updating = False
        self._show(window)
        return window

    def adjust(self, dx: float, dy: float) -> Window | None:
        """A drag of (dx, dy) screen pixels (``OrthoViews.window_drag``)."""
        window = self.current()
        return None if window is None else self.set_window(drag_window(window, dx, dy))

    def _typed(self) -> None:
        if not self._updating:
            self.set_window(Window(level=self.level_spin.value(), width=self.width_spin.value()))

    def _show(self, window: Window) -> None:
        updating, self._updating = self._updating, True
        try:
            self.level_spin.setValue(window.level)
            self.width_spin.setValue(window.width)
        finally:
            self._updating = updating
        text = window.text()
        self.values_label.setText(f"{self.modality or 'modality unknown'}: {text}")
        overlay = _text_overlay(self.viewer)
        overlay.text = text
        overlay.visible = True
