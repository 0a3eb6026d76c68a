"""A shown viewer renders the shipped brain model's contours in the reading-room layout: on the bundled sample and
on a real T1 head with the skull on.

The layout is `medseg view`'s (``set_up_reading_room``): the axial main canvas, the coronal and
sagittal views below it, the Review/Segment, Edit and Window docks. The pictures go to a
temporary folder; `pytest --update-docs` writes them to docs/napari-review.png (the sample) and
docs/napari-real-head.png (ROBEX's reference T1, a real head never trained on: tests/models/real_scan_helpers).

The overlay is models/brain-tissue-unet's prediction (with its uncertainty map, class volumes and QC flags), shown
through the Segment dock exactly as its Segment button shows it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from medseg_napari._layers import add_layer, class_colors, image_layers
from medseg_napari.viewer_setup import set_up_reading_room

from medseg.inference import Predictor
from medseg.io import read_scan
from medseg.types import Volume
from medseg.review.sample import sample_subject

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REAL_CHECKS = Path(tempfile.gettempdir()) / "medseg-real-checks"  # as tests/models/real_scan_helpers.DEFAULT_DIR


def _scan(which: str, request: pytest.FixtureRequest) -> Volume:
    """The scan to show: the bundled sample's subject or a real head (built once, then cached)."""
    if which == "sample":
        return read_scan(sample_subject(request.config.cache.mkdir("medseg-sample")).image)  # ~10 s once
    from medseg.data.real_scans import build_real_checks

    files = build_real_checks(REAL_CHECKS, ("robex-t1",))[0]  # the tests/models checks' files, built once
    return read_scan(files.image)


@pytest.mark.gui
@pytest.mark.parametrize(("which", "picture_name"), [("sample", "napari-review.png"),
                                                     ("real-head", "napari-real-head.png")])
def test_contour_screenshot(make_napari_viewer, qtbot, request, tmp_path, which, picture_name):
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        pytest.skip("QT_QPA_PLATFORM=offscreen renders no canvas; run under Xvfb (pytest-xvfb)")
    volume = _scan(which, request)
    model = ROOT / "models" / "brain-tissue-unet"
    predictor = Predictor.from_model(model)
    class_names = predictor.model.card.class_names
    prediction = predictor.predict(volume)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1700, 1050)  # room for the docks and the side views in the picture
    room = set_up_reading_room(viewer)
    add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = room.review.segment
    widget.add_model(model)  # the picture names the model whose contours it shows
    assert widget.model_combo.currentText() == "brain-tissue-unet"
    result = widget.show(volume, prediction.labels.array, class_names=class_names,
                         uncertainty=prediction.uncertainty, qc_flags=prediction.qc_flags)
    room.edit.attach(result.labels)
    room.window.for_case("MR")
    widget.jump_to_row(2)  # white matter's largest axial slice
    viewer.reset_view()
    qtbot.wait(50)
    assert result.labels.contour == 1
    assert room.views.visible_canvases() == 3
    for side in room.views.side_viewers:  # coronal and sagittal show the brain too
        assert side.screenshot(flash=False)[..., :3].std() > 10

    canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    assert canvas.std() > 10  # not blank
    for label in (1, 2, 3):  # every tissue's contour colour is drawn
        colour = np.array(class_colors(4)[label]) * 255
        close = np.abs(canvas - colour).max(axis=-1) < 40
        assert close.sum() > 50, f"no {class_names[label]} contour in the screenshot"
    # Contours, not filled regions: most of the white-matter area shows the scan, not the label colour
    # (measured against the same view filled, so the canvas size and zoom do not move the bar).
    wm_colour = np.array(class_colors(4)[3]) * 255
    outlined = (np.abs(canvas - wm_colour).max(axis=-1) < 40).mean()
    result.labels.contour = 0
    qtbot.wait(50)
    filled_canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    filled = (np.abs(filled_canvas - wm_colour).max(axis=-1) < 40).mean()
    result.labels.contour = 1
    qtbot.wait(50)
    assert outlined < filled / 2, (outlined, filled)

    folder = DOCS if request.config.getoption("--update-docs") else tmp_path
    folder.mkdir(exist_ok=True)
    picture = viewer.screenshot(canvas_only=False, flash=False)
    from imageio.v3 import imwrite

    imwrite(folder / picture_name, picture)
    assert (folder / picture_name).stat().st_size > 10_000

