"""Activations dock: a chosen layer's activations for the open scan, a few channels, as image layers.

The network is the Segment dock's loaded model (or one loaded here from a model folder, or
given with ``set_network``). Maps are on the scan's grid (``medseg.inference.activations``)
and shown with the scan's world affine, so they overlay it; layers are named
``activation <layer> ch<c>`` and replaced on each run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from medseg.errors import MedsegError
from medseg.inference.activations import layer_names, predictor_activations, scan_activations
from medseg_napari._layers import grid_of

LAYER_PREFIX = "activation"


class ActivationsWidget(QWidget):
    """The Activations dock (see the module docstring)."""

    def __init__(self, napari_viewer: Any, segment: Any = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.segment = segment
        self.network: Any = None
        self.predictor: Any = None
        self.layers: list[Any] = []

        self.layer_combo = QComboBox()
        self.channels_edit = QLineEdit("0,1,2")
        self.load_button = QPushButton("Use the Segment dock's model")
        self.show_button = QPushButton("Show activations")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.load_button)
        for label, widget in (("Layer", self.layer_combo), ("Channels", self.channels_edit)):
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(widget, 1)
            layout.addLayout(row)
        layout.addWidget(self.show_button)
        layout.addWidget(self.status)
        self.load_button.clicked.connect(self.use_segment_model)
        self.show_button.clicked.connect(self.show_activations)

    def use_segment_model(self) -> bool:
        """Take the network of the Segment dock's chosen model."""
        if self.segment is None:
            self.status.setText("No Segment dock: open medseg's Segment widget first.")
            return False
        try:
            predictor = self.segment.load_predictor()
        except (MedsegError, ImportError) as error:
            self.status.setText(f"Cannot load the model: {error}")
            return False
        self.set_network(predictor.network)
        self.predictor = predictor  # its preprocessing feeds the network, as in prediction
        return True

    def set_network(self, network: Any) -> None:
        """Use ``network`` (a torch module in evaluation mode; input z-scored) and list its layers."""
        self.network = network
        self.predictor = None
        self.layer_combo.clear()
        self.layer_combo.addItems(layer_names(network))
        self.status.setText(f"{self.layer_combo.count()} convolution layers")

    def channels(self) -> list[int]:
        """Channel indices typed in ``channels_edit`` (comma separated)."""
        return [int(part) for part in self.channels_edit.text().replace(" ", "").split(",") if part]

    def _scan_layer(self) -> Any:
        if self.segment is not None and self.segment.scan_combo.currentText() in self.viewer.layers:
            return self.viewer.layers[self.segment.scan_combo.currentText()]
        for layer in self.viewer.layers:
            if layer._type_string == "image" and "medseg_volume" in layer.metadata \
                    and not layer.name.startswith((LAYER_PREFIX, "uncertainty")):
                return layer
        return None

    def show_activations(self) -> list[Any]:
        """Compute the chosen layer's activations for the scan and add them as image layers."""
        scan = self._scan_layer()
        if self.network is None and not self.use_segment_model():
            return []
        if scan is None:
            self.status.setText("Open a scan first.")
            return []
        volume = scan.metadata["medseg_volume"]
        layer = self.layer_combo.currentText()
        try:
            if self.predictor is not None:
                result = predictor_activations(self.predictor, volume, layer, self.channels())
            else:
                result = scan_activations(self.network, volume.array, layer, self.channels())
        except (MedsegError, ValueError, RuntimeError) as error:
            self.status.setText(f"Cannot compute activations: {error}")
            return []
        for old in self.layers:
            if old in self.viewer.layers:
                self.viewer.layers.remove(old)
        grid = grid_of(volume)
        self.layers = []
        for channel, array in zip(result.channels, result.array):
            data = grid.to_display(array)
            low, high = np.percentile(data, (1, 99))
            self.layers.append(self.viewer.add_image(
                data, name=f"{LAYER_PREFIX} {layer} ch{channel}", affine=grid.affine, colormap="viridis",
                contrast_limits=(float(low), float(high) if high > low else float(low) + 1e-6),
                blending="additive", opacity=0.6, visible=channel == result.channels[0],
                metadata={"medseg_grid": grid},
            ))
        self.status.setText(f"{layer}: channels {list(result.channels)} of {result.total_channels} "
                            f"(feature map {result.feature_shape})")
        return self.layers
