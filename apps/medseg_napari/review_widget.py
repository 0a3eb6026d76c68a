"""Review dock: a worklist (most in need first), next/previous, accept/corrected, saved edits and log.

Opening a case reads its scan, the model's labels (and an earlier review of them, if any),
and its uncertainty map, and shows them through the Segment dock (contours, table); the Edit
and Window docks, when given (``edit``, ``window_dock``), follow the case. A decision writes
``<case>/seg_reviewed.nii.gz`` when the labels were edited (the model's ``seg.nii.gz`` is never
written) and appends to ``review_log.json`` (``medseg.review.review_log``: decision, seconds on
the case, strokes); "Corrected" on a DICOM case also writes ``<case>/seg_reviewed.dcm``, a
DICOM-SEG for the PACS (``medseg.review.corrected_seg``), and hands it to ``sender`` when one is
set. No sender exists yet: the PACS issue's ``--send-to`` will set it; until then the file stays
in the case folder and the status line says so.

The worklist shows each case by its input path relative to the study root (and a DICOM series'
description, read live from the study folder), its flags and uncertainty; the pseudonymous
case id names the files and the log.

Keyboard shortcuts (bound on the viewer): Alt-N next, Alt-P previous, Alt-A accept,
Alt-C corrected, Alt-T contours/filled, Alt-U uncertainty on/off.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medseg.errors import MedsegError
from medseg.io import read_labels, read_scan
from medseg.review.review_log import LOG_NAME, REVIEWED_NAME, ReviewRecord, save_review
from medseg.review.corrected_seg import Sender
from medseg.review.worklist import WorkItem, load_worklist, worklist_label
from medseg_napari._layers import add_layer, image_layers, source_labels
from medseg_napari.segment_widget import SegmentWidget

SHORTCUTS = {
    "Alt-N": "next_case",
    "Alt-P": "previous_case",
    "Alt-A": "accept",
    "Alt-C": "mark_corrected",
    "Alt-T": "toggle_contours",
    "Alt-U": "toggle_uncertainty",
}
SCAN_LAYER = "scan"


def _read_class_names(item: WorkItem) -> tuple[str, ...]:
    """Class names of a case from its case.json (``class_names`` or the keys of ``class_volumes_ml``)."""
    import json

    case_json = item.case_dir / "case.json" if item.case_dir else None
    if case_json is None or not case_json.is_file():
        return ()
    try:
        content = json.loads(case_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    names = content.get("class_names") or content.get("classes")
    if isinstance(names, list):
        return tuple(str(n) for n in names)
    volumes = content.get("class_volumes_ml")
    if isinstance(volumes, dict):
        return ("background", *volumes)
    return ()


class ReviewWidget(QWidget):
    """The Review dock (see the module docstring)."""

    def __init__(self, napari_viewer: Any, segment: SegmentWidget | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        embedded = segment is None  # standalone (napari's Plugins menu): the Segment panel lives inside this dock
        self.segment = segment or SegmentWidget(napari_viewer)
        self.folder: Path | None = None
        self.items: list[WorkItem] = []
        self.index = -1
        self.started = time.monotonic()
        self.last_record: ReviewRecord | None = None
        self.edit: Any = None  # EditWidget, when docked (viewer_setup)
        self.window_dock: Any = None  # WindowWidget, when docked
        self.sender: Sender | None = None  # the PACS hook (see the module docstring)

        self.open_button = QPushButton("Open worklist…")
        self.list = QListWidget()
        self.previous_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.accept_button = QPushButton("Accept")
        self.corrected_button = QPushButton("Corrected")
        self.status = QLabel("Open a `medseg predict` output folder or a study folder.")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(self.list, 1)
        moves = QHBoxLayout()
        moves.addWidget(self.previous_button)
        moves.addWidget(self.next_button)
        layout.addLayout(moves)
        decisions = QHBoxLayout()
        decisions.addWidget(self.accept_button)
        decisions.addWidget(self.corrected_button)
        layout.addLayout(decisions)
        layout.addWidget(self.status)
        keys = QLabel("Keys: " + ", ".join(f"{k} {v.replace('_', ' ')}" for k, v in SHORTCUTS.items())
                      + ", Alt-V one/three views, Alt-1/2/3 axial/coronal/sagittal main view")
        keys.setWordWrap(True)
        layout.addWidget(keys)
        if embedded:
            layout.addWidget(self.segment, 2)

        self.open_button.clicked.connect(self._browse)
        self.previous_button.clicked.connect(self.previous_case)
        self.next_button.clicked.connect(self.next_case)
        self.accept_button.clicked.connect(self.accept)
        self.corrected_button.clicked.connect(self.mark_corrected)
        self.list.currentRowChanged.connect(self._row_changed)
        self.bind_keys()

    def bind_keys(self) -> None:
        """Bind the shortcuts on the viewer (replacing earlier bindings of the same keys)."""
        for key, method in SHORTCUTS.items():
            action = getattr(self, method)
            self.viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)

    def toggle_contours(self) -> None:
        """Contours <-> filled."""
        self.segment.toggle_contours()

    def toggle_uncertainty(self) -> None:
        """Uncertainty layer on/off."""
        self.segment.toggle_uncertainty()

    def _browse(self) -> None:  # pragma: no cover - a modal dialog
        folder = QFileDialog.getExistingDirectory(self, "Worklist folder")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path, *, scan_root: str | Path | None = None) -> list[WorkItem]:
        """Load a worklist and open its first case."""
        try:
            self.items = load_worklist(folder, scan_root=scan_root)
        except MedsegError as error:
            self.status.setText(f"Cannot open the worklist: {error}")
            return []
        self.folder = Path(folder)
        self._fill_list()
        self.show_case(0)
        return self.items

    def _fill_list(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for item in self.items:
            self.list.addItem(worklist_label(item))
        self.list.setCurrentRow(self.index)
        self.list.blockSignals(False)

    def _row_changed(self, row: int) -> None:
        if row != self.index and 0 <= row < len(self.items):
            self.show_case(row)

    @property
    def current(self) -> WorkItem | None:
        """The case on screen."""
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def show_case(self, index: int) -> bool:
        """Open case ``index`` of the worklist; False (with a status message) when it cannot be shown."""
        if not 0 <= index < len(self.items):
            return False
        self.index = index
        item = self.items[index]
        self.list.blockSignals(True)
        self.list.setCurrentRow(index)
        self.list.blockSignals(False)
        if item.scan is None:
            self.status.setText(f"{item.case_id}: its scan was not found (status {item.status}); skip it.")
            return False
        try:
            volume = read_scan(item.scan)
            original = np.zeros(volume.spatial_shape, dtype=np.uint8)
            if item.prediction is not None:
                original = read_labels(item.prediction, reference=volume).array
            start = original
            reviewed = item.case_dir / REVIEWED_NAME if item.case_dir else None
            if reviewed is not None and reviewed.is_file():
                start = read_labels(reviewed, reference=volume).array
            uncertainty = None
            if item.uncertainty is not None:
                uncertainty = read_scan(item.uncertainty).array[0]
        except MedsegError as error:
            self.status.setText(f"{item.case_id}: cannot be opened: {error}")
            return False
        with self.viewer.layers.batched_update():  # napari cleans its scene graph (a full gc) once, not per layer
            if SCAN_LAYER in self.viewer.layers:
                self.viewer.layers.remove(SCAN_LAYER)
            scan_layer = add_layer(self.viewer, image_layers(volume, name=SCAN_LAYER)[0])
            self.viewer.layers.move(self.viewer.layers.index(scan_layer), 0)
            names = item.class_names or _read_class_names(item)
            self.segment.show(volume, start, class_names=names, uncertainty=uncertainty, qc_flags=item.qc_flags,
                              prediction=str(item.prediction) if item.prediction else None, original=original)
        if self.edit is not None:
            self.edit.attach(self.segment.result.labels)
        if self.window_dock is not None:
            self.window_dock.for_case(item.modality)
        self.viewer.reset_view()
        self.started = time.monotonic()
        flags = "; ".join(item.qc_flags) or "no QC flags"
        name = item.display_name or item.case_id
        self.status.setText(f"{index + 1}/{len(self.items)} {name} ({item.case_id}): {flags}")
        return True

    def _send(self, path: Path) -> str:
        """Hand a corrected DICOM-SEG to the PACS hook; what happened, for the status line."""
        if self.sender is None:
            return f"DICOM-SEG written ({path.name}); not sent: no PACS is configured"
        try:
            self.sender(path)
        except MedsegError as error:
            return f"DICOM-SEG written ({path.name}); sending failed: {error}"
        return f"DICOM-SEG written ({path.name}) and sent"

    def next_case(self) -> bool:
        """Open the next case."""
        return self.show_case(self.index + 1)

    def previous_case(self) -> bool:
        """Open the previous case."""
        return self.show_case(self.index - 1)

    def decide(self, decision: str, *, advance: bool = True) -> ReviewRecord | None:
        """Save the current case's labels (if edited) and log ``decision``; then open the next case."""
        item, result = self.current, self.segment.result
        if item is None or result is None or self.folder is None:
            self.status.setText("No case is open.")
            return None
        layer = result.labels
        try:
            record = save_review(
                case_id=item.case_id, decision=decision, seconds=time.monotonic() - self.started,
                original=layer.metadata["medseg_original"], edited=source_labels(layer),
                reference=result.volume, class_names=layer.metadata["medseg_class_names"],
                case_dir=item.case_dir or self.folder / item.case_id, log_path=self.folder / LOG_NAME,
                prediction=item.prediction, edits=self.edit.edits if self.edit is not None else 0,
                model_name=item.model_name,
            )
        except MedsegError as error:
            self.status.setText(f"{item.case_id}: not saved: {error}")
            return None
        self.last_record = record
        self.items[self.index] = WorkItem(**{**item.__dict__, "decision": decision})
        self._fill_list()
        changed = ", ".join(record.classes_changed) or "no classes"
        message = f"{item.case_id}: {decision} ({changed} changed, {record.seconds:.0f} s)"
        if record.dicom_seg:
            message += "; " + self._send(self.folder / record.dicom_seg)
        self.status.setText(message)
        if advance and self.index + 1 < len(self.items):
            self.next_case()
            self.status.setText(f"{message}\n{self.status.text()}")  # what was saved stays readable
        return record

    def accept(self) -> ReviewRecord | None:
        """Accept the case as shown (edits, if any, are saved too)."""
        return self.decide("accepted")

    def mark_corrected(self) -> ReviewRecord | None:
        """Mark the case corrected and save the edited labels."""
        return self.decide("corrected")
