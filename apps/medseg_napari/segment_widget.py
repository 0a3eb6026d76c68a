"""Segment dock: choose a model, run it on the open scan in a background thread, show the result.

Parts are attributes (``model_combo``, ``scan_combo``, ``run_button``, ``cancel_button``,
``progress``, ``contour_check``, ``uncertainty_check``, ``near_check``, ``opacity_slider``, ``table``) so
tests drive the callbacks without clicks. The model is a folder with ``model.yaml``,
``weights.pt`` and ``model_card.json``, run by ``medseg.inference.predictor.Predictor``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg.errors import MedsegError
from medseg.inference.card_text import folder_tooltip
from medseg.resources import resources_root
from medseg_napari._results import ShownResult, jump_to_class, show_result, show_uncertainty_near

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("class", "volume (mL)", "mean uncertainty", "QC flags")


def model_folders(models_dir: str | Path) -> list[Path]:
    """Sub-folders of ``models_dir`` that hold a model (``model.yaml``), sorted by name."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / "model.yaml").is_file())


class SegmentWidget(QWidget):
    """The Segment dock (see the module docstring)."""

    def __init__(self, napari_viewer: Any, models_dir: str | Path | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.predictor: Any = None
        self.result: ShownResult | None = None
        self.worker: Any = None
        self._progress_value = 0.0
        self._cancel_requested = False

        self.model_combo = QComboBox()
        self.browse_button = QPushButton("Browse…")
        self.scan_combo = QComboBox()
        self.run_button = QPushButton("Segment")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.contour_check = QCheckBox("contours (off: filled)")
        self.contour_check.setChecked(True)
        self.uncertainty_check = QCheckBox("uncertainty")
        self.uncertainty_check.setChecked(True)
        self.near_check = QCheckBox("near contours only")
        self.near_check.setChecked(True)
        self.near_check.setToolTip("Hide the uncertainty more than 10 mm from any labelled voxel (face, neck).")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._show_progress)

        layout = QVBoxLayout(self)
        for label, widget in (("Model", self.model_combo), ("Scan", self.scan_combo)):
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(widget, 1)
            if widget is self.model_combo:
                row.addWidget(self.browse_button)
            layout.addLayout(row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.contour_check)
        opacity = QHBoxLayout()
        opacity.addWidget(self.uncertainty_check)
        opacity.addWidget(self.near_check)
        opacity.addWidget(QLabel("opacity"))
        opacity.addWidget(self.opacity_slider, 1)
        layout.addLayout(opacity)
        layout.addWidget(self.table, 1)

        self.browse_button.clicked.connect(self._browse)
        self.model_combo.currentIndexChanged.connect(self._show_model_tooltip)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.contour_check.toggled.connect(self.set_contours)
        self.uncertainty_check.toggled.connect(self.set_uncertainty_visible)
        self.near_check.toggled.connect(self.set_uncertainty_near)
        self.opacity_slider.valueChanged.connect(self.set_uncertainty_opacity)
        self.table.cellClicked.connect(lambda row, _column: self.jump_to_row(row))
        self.viewer.layers.events.inserted.connect(self.refresh_scans)
        self.viewer.layers.events.removed.connect(self.refresh_scans)
        # The bundled models: the source tree's models/ or, installed from a wheel, medseg/_bundled/models.
        self.set_models_dir(models_dir or resources_root() / "models")
        self.refresh_scans()

    # --- choosing ---------------------------------------------------------------------------
    def set_models_dir(self, models_dir: str | Path) -> None:
        """List the models of a folder in ``model_combo``."""
        self.model_combo.clear()
        for folder in model_folders(models_dir):
            self.model_combo.addItem(folder.name, str(folder))
            self._describe_model(self.model_combo.count() - 1)

    def add_model(self, model_dir: str | Path) -> None:
        """Add (if new) and select one model folder."""
        path = str(Path(model_dir))
        index = self.model_combo.findData(path)
        if index < 0:
            self.model_combo.addItem(Path(path).name, path)
            index = self.model_combo.count() - 1
            self._describe_model(index)
        self.model_combo.setCurrentIndex(index)

    def _describe_model(self, index: int) -> None:
        """The card's description, intended use and known limitations on the model's name (a tooltip)."""
        self.model_combo.setItemData(index, folder_tooltip(self.model_combo.itemData(index)),
                                     Qt.ItemDataRole.ToolTipRole)
        if index == self.model_combo.currentIndex():
            self._show_model_tooltip(index)

    def _show_model_tooltip(self, index: int) -> None:
        """The chosen model's card text on the combo box itself."""
        self.model_combo.setToolTip(self.model_combo.itemData(index, Qt.ItemDataRole.ToolTipRole) or "")

    def _browse(self) -> None:  # pragma: no cover - a modal dialog
        folder = QFileDialog.getExistingDirectory(self, "Model folder")
        if folder:
            self.add_model(folder)

    def refresh_scans(self, _event: Any = None) -> None:
        """List the image layers opened by medseg (they carry their Volume)."""
        current = self.scan_combo.currentText()
        self.scan_combo.clear()
        for layer in self.viewer.layers:
            is_scan = layer._type_string == "image" and "medseg_volume" in layer.metadata
            if is_scan and layer.name != "uncertainty" and not layer.name.startswith("activation"):
                self.scan_combo.addItem(layer.name)
        if current:
            index = self.scan_combo.findText(current)
            if index >= 0:
                self.scan_combo.setCurrentIndex(index)

    def current_volume(self) -> Any:
        """The Volume of the chosen scan layer, or None."""
        name = self.scan_combo.currentText()
        if not name or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name].metadata["medseg_volume"]

    def load_predictor(self) -> Any:
        """The Predictor of the chosen model (loaded once per folder)."""
        from medseg.inference.predictor import Predictor  # lazy: torch and the model are heavy

        model_dir = self.model_combo.currentData()
        if not model_dir:
            raise MedsegError("no model chosen: pick a model folder (model.yaml, weights.pt, model_card.json)")
        if self.predictor is None or Path(self.predictor.model_dir) != Path(model_dir):
            self.predictor = Predictor.from_model(model_dir)
        return self.predictor

    # --- running ----------------------------------------------------------------------------
    def run(self) -> Any:
        """Start segmenting the chosen scan in a background thread; returns the worker (None if not started)."""
        from napari.qt.threading import create_worker

        volume = self.current_volume()
        if volume is None:
            self.status.setText("Open a scan first (File > Open, or File > Open Sample > medseg).")
            return None
        try:
            predictor = self.load_predictor()
        except MedsegError as error:
            self.status.setText(f"Cannot load the model: {error}")
            return None
        self._cancel_requested = False
        self._progress_value = 0.0
        self.worker = create_worker(self._predict, predictor, volume)
        self.worker.returned.connect(lambda prediction: self.show_prediction(volume, prediction))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Segmenting with {Path(predictor.model_dir).name}…")
        self._timer.start()
        self.worker.start()
        return self.worker

    def _predict(self, predictor: Any, volume: Any) -> Any:
        """Runs in the worker thread."""
        return predictor.predict(volume, progress=self._set_progress, cancel=lambda: self._cancel_requested)

    def _set_progress(self, value: float) -> None:
        self._progress_value = float(value)  # read by the GUI timer; a float store is atomic

    def _show_progress(self) -> None:
        self.progress.setValue(int(round(100 * min(max(self._progress_value, 0.0), 1.0))))

    def cancel(self) -> None:
        """Ask the running prediction to stop (it raises Cancelled at its next check)."""
        self._cancel_requested = True
        self.status.setText("Cancelling…")

    def _failed(self, error: Exception) -> None:
        if self._cancel_requested:
            self.status.setText("Cancelled.")
        else:
            logger.warning("segmentation failed: %s", error)
            self.status.setText(f"Segmentation failed: {error}")

    def _finished(self) -> None:
        self._timer.stop()
        self._show_progress()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # --- showing ----------------------------------------------------------------------------
    def show_prediction(self, volume: Any, prediction: Any) -> ShownResult:
        """Show a ``Prediction`` (labels, uncertainty, QC flags) on ``volume``."""
        predictor = self.predictor
        names = tuple(getattr(predictor, "class_names", ()) or prediction.labels.class_names)
        colors = tuple(getattr(predictor, "class_colors", ()) or ())
        self._progress_value = 1.0
        self.status.setText("Done. " + ("QC: " + "; ".join(prediction.qc_flags) if prediction.qc_flags else ""))
        return self.show(volume, prediction.labels.array, class_names=names, colors=colors,
                         uncertainty=prediction.uncertainty, qc_flags=prediction.qc_flags)

    def show(self, volume: Any, labels: Any, **options: Any) -> ShownResult:
        """Show labels (and options of ``show_result``) and fill the class table."""
        self.result = show_result(self.viewer, volume, labels, near_contours=self.near_check.isChecked(), **options)
        self.set_contours(self.contour_check.isChecked())
        self.set_uncertainty_visible(self.uncertainty_check.isChecked())
        self.set_uncertainty_opacity(self.opacity_slider.value())
        self.fill_table()
        return self.result

    def fill_table(self) -> None:
        """One row per class: name, volume, mean uncertainty, flags."""
        rows = self.result.rows if self.result else []
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            uncertainty = "" if row.mean_uncertainty is None else f"{row.mean_uncertainty:.3f}"
            for column, text in enumerate((row.name, f"{row.volume_ml:.1f}", uncertainty, ", ".join(row.flags))):
                self.table.setItem(index, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def jump_to_row(self, row: int) -> Any:
        """Go to the largest slice of the class in table row ``row``; returns the world point."""
        if self.result is None or not 0 <= row < len(self.result.rows):
            return None
        return jump_to_class(self.viewer, self.result.labels, self.result.rows[row])

    def set_contours(self, on: bool) -> None:
        """Contours (True) or filled labels (False)."""
        if self.result is not None and self.result.labels in self.viewer.layers:
            self.result.labels.contour = 1 if on else 0
        if self.contour_check.isChecked() != bool(on):
            self.contour_check.setChecked(bool(on))

    def toggle_contours(self) -> None:
        """Switch contours/filled."""
        self.set_contours(not self.contour_check.isChecked())

    def set_uncertainty_visible(self, on: bool) -> None:
        """Show or hide the uncertainty layer."""
        if self.result is not None and self.result.uncertainty is not None:
            self.result.uncertainty.visible = bool(on)
        if self.uncertainty_check.isChecked() != bool(on):
            self.uncertainty_check.setChecked(bool(on))

    def set_uncertainty_near(self, on: bool) -> None:
        """Uncertainty near the contours only (True) or everywhere (False)."""
        if self.result is not None and self.result.uncertainty is not None:
            show_uncertainty_near(self.result.uncertainty, bool(on))
        if self.near_check.isChecked() != bool(on):
            self.near_check.setChecked(bool(on))

    def toggle_uncertainty(self) -> None:
        """Show/hide the uncertainty layer."""
        self.set_uncertainty_visible(not self.uncertainty_check.isChecked())

    def set_uncertainty_opacity(self, value: int) -> None:
        """Uncertainty layer opacity, 0..100."""
        if self.result is not None and self.result.uncertainty is not None:
            self.result.uncertainty.opacity = value / 100.0
