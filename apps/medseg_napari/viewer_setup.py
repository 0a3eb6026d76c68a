"""Open napari ready for review: the scan, the prediction folder as a worklist, the model chosen.

Used by ``medseg view``; importable without starting an event loop, so tests call it on a test viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.io import read_scan
from medseg_napari._layers import add_layer, image_layers
from medseg_napari.activations_widget import ActivationsWidget
from medseg_napari.review_widget import ReviewWidget


def set_up_viewer(
    viewer: Any, scan: str | Path | None = None, *, pred_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> ReviewWidget:
    """Dock Review (with Segment) and Activations; open ``scan`` and/or the worklist of ``pred_dir``.

    With ``pred_dir`` the worklist opens at its first case (``scan`` is then the input root the
    cases' relative paths start from, when it is a folder); otherwise ``scan`` is opened alone.
    """
    review = ReviewWidget(viewer)
    if model_dir is not None:
        review.segment.add_model(model_dir)
    activations = ActivationsWidget(viewer, review.segment)
    viewer.window.add_dock_widget(review, name="medseg review", area="right")
    viewer.window.add_dock_widget(activations, name="medseg activations", area="right")
    if pred_dir is not None:
        root = Path(scan) if scan is not None and Path(scan).is_dir() else None
        review.open_folder(pred_dir, scan_root=root)
    elif scan is not None:
        for layer_data in image_layers(read_scan(scan)):
            add_layer(viewer, layer_data)
    return review
