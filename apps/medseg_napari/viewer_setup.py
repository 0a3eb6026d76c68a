"""Open napari ready for reading: three linked views, the scan, the prediction folder as a worklist.

Used by ``medseg view``; importable without starting an event loop, so tests call it on a test viewer.
Layout: the main canvas (axial) with the coronal and sagittal views docked below it
(``OrthoViews``; Alt-V one large view), the Review dock (worklist, Segment panel) on the right
(460 px wide) in front of Activations' tab, the Edit and Window docks on the left under napari's layer
list, so that the main canvas keeps most of the width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer

from medseg.io import read_scan
from medseg_napari._layers import add_layer, image_layers
from medseg_napari.activations_widget import ActivationsWidget
from medseg_napari.edit_widget import EditWidget
from medseg_napari.ortho_views import OrthoViews
from medseg_napari.review_widget import ReviewWidget
from medseg_napari.window_widget import WindowWidget


RIGHT_DOCK_PX = 460  # the Review dock's width: the main canvas keeps the rest


@dataclass
class ReadingRoom:
    """The docks of a set-up viewer."""

    review: ReviewWidget
    views: OrthoViews
    edit: EditWidget
    window: WindowWidget
    activations: ActivationsWidget


def set_up_reading_room(
    viewer: Any, scan: str | Path | None = None, *, pred_dir: str | Path | None = None,
    model_dir: str | Path | None = None, study: str | Path | None = None, sender: Any = None,
) -> ReadingRoom:
    """Dock the views and docks; open ``scan`` and/or the worklist of ``pred_dir``.

    With ``pred_dir`` the worklist opens at its first case; ``study`` (or ``scan`` when it is a
    folder) is the input root the cases' paths start from, where DICOM series are found again
    (and their names and descriptions read, for the screen only). Without ``pred_dir``, ``scan``
    is opened alone. ``sender`` (a ``medseg.review.corrected_seg.Sender``, e.g.
    ``medseg.review.pacs_sender.PacsReviewSender``) receives each corrected DICOM-SEG.
    """
    views = OrthoViews(viewer)
    views.dock = viewer.window.add_dock_widget(views, name="medseg views", area="bottom")
    review = ReviewWidget(viewer)
    review.sender = sender
    if model_dir is not None:
        review.segment.add_model(model_dir)
    edit = EditWidget(viewer, views)
    window = WindowWidget(viewer)
    views.window_drag = window.adjust
    review.edit, review.window_dock = edit, window
    activations = ActivationsWidget(viewer, review.segment)
    viewer.window.add_dock_widget(activations, name="medseg activations", area="right")
    review_dock = viewer.window.add_dock_widget(review, name="medseg review", area="right", tabify=True)
    viewer.window.add_dock_widget(edit, name="medseg edit", area="left")
    viewer.window.add_dock_widget(window, name="medseg window", area="left")
    qt_window = viewer.window._qt_window
    QTimer.singleShot(0, lambda: qt_window.resizeDocks([review_dock], [RIGHT_DOCK_PX], Qt.Orientation.Horizontal))
    if pred_dir is not None:
        root = study if study is not None else scan
        root = Path(root) if root is not None and Path(root).is_dir() else None
        review.open_folder(pred_dir, scan_root=root)
    elif scan is not None:
        for layer_data in image_layers(read_scan(scan)):
            add_layer(viewer, layer_data)
        window.for_case()
    return ReadingRoom(review=review, views=views, edit=edit, window=window, activations=activations)


def set_up_viewer(
    viewer: Any, scan: str | Path | None = None, *, pred_dir: str | Path | None = None,
    model_dir: str | Path | None = None, study: str | Path | None = None, sender: Any = None,
) -> ReviewWidget:
    """``set_up_reading_room``, returning the Review dock (the earlier interface)."""
    return set_up_reading_room(viewer, scan, pred_dir=pred_dir, model_dir=model_dir, study=study,
                               sender=sender).review
