"""The reading room in a shown viewer (Xvfb): three linked views, window/level, editing, corrected DICOM-SEG."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from medseg_napari.viewer_setup import set_up_reading_room
from napari_phantoms import SAGITTAL, phantom
from test_widgets import CLASSES, _prediction_folder, _press

from medseg.io import read_scan, write_labels
from medseg.review.corrected_seg import CORRECTED_SEG_NAME
from medseg.review.review_log import LOG_NAME
from medseg.review.windowing import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review"))
from dicom_validation import dciodvfy_errors  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM") == "offscreen",
                                reason="needs a real (Xvfb) window: run under pytest-xvfb")


def _room(make_napari_viewer, qtbot, *args, **kwargs):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    room = set_up_reading_room(viewer, *args, **kwargs)
    qtbot.wait(50)
    return viewer, room


def test_three_linked_views_and_single_view_switch(make_napari_viewer, qtbot, tmp_path):
    out = _prediction_folder(tmp_path)
    viewer, room = _room(make_napari_viewer, qtbot, tmp_path / "input", pred_dir=out)
    views = room.views
    assert views.visible_canvases() == 3
    names = [layer.name for layer in viewer.layers]
    for model in views.side_models:  # the same layers, over the same arrays
        assert [layer.name for layer in model.layers] == names
        assert model.layers["segmentation"].data is viewer.layers["segmentation"].data
    assert [tuple(m.dims.order) for m in views.models] == [(0, 1, 2), (1, 0, 2), (2, 0, 1)]
    assert [tuple(str(v) for v in m.scene.camera.orientation2d) for m in views.models] == [
        ("down", "right"), ("up", "right"), ("up", "right")]

    labels = viewer.layers["segmentation"]
    target = labels.data_to_world(np.array(labels.data.shape) // 3)
    views.set_point(target)  # a click in any view does this
    for model in views.models:  # the same point, up to each view's slice grid (this scan is oblique)
        np.testing.assert_allclose(model.dims.point, target, atol=1.0)
    views.side_models[1].dims.current_step = (3, 4, 5)  # scrolling the sagittal view moves the others
    moved = views.side_models[1].dims.point
    for model in views.models:
        np.testing.assert_allclose(model.dims.point, moved, atol=1.0)

    click = SimpleNamespace(button=1, modifiers=(), pos=(10, 10), type="mouse_press", position=target)
    handler = views._click_to_point(views.side_models[0], click)  # press and release on the coronal view
    next(handler)
    click.type, click.position = "mouse_release", tuple(np.asarray(target) + 1.5)
    with pytest.raises(StopIteration):
        next(handler)
    np.testing.assert_allclose(viewer.dims.point, np.asarray(target) + 1.5, atol=1.0)

    side_picture = views.side_viewers[0].screenshot(flash=False)
    assert side_picture.shape[0] > 50 and side_picture[..., :3].std() > 1  # the coronal view draws the scan

    _press(viewer, "Alt-V")
    qtbot.wait(20)
    assert views.single and views.visible_canvases() == 1
    _press(viewer, "Alt-V")
    qtbot.wait(20)
    assert not views.single and views.visible_canvases() == 3
    _press(viewer, "Alt-2")  # coronal in the main canvas, axial and sagittal beside it
    assert views.planes == ["coronal", "axial", "sagittal"] and tuple(viewer.dims.order) == (1, 0, 2)
    assert tuple(views.side_models[0].dims.order) == (0, 1, 2)
    _press(viewer, "Alt-1")
    assert tuple(viewer.dims.order) == (0, 1, 2)


def test_radiological_orientation_in_rendered_views(make_napari_viewer, qtbot, tmp_path):
    """A bright block at the patient's right, superior, anterior corner lands on screen left/top."""
    shape = (24, 24, 24)
    image = np.zeros(shape, np.float32)
    image[16:, 16:, 16:] = 1000.0  # RAS identity: high i = patient's right, high j = anterior, high k = superior
    scan = tmp_path / "corner.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), scan)
    viewer, room = _room(make_napari_viewer, qtbot, scan)
    room.views.set_point(viewer.layers[0].data_to_world((20, 4, 4)))  # display voxel (S, P, L): in the block
    viewer.layers[0].contrast_limits = (0, 1000)
    assert room.window.values_label.text().endswith("W 1000 L 500")  # napari's own slider shows in the dock
    viewer.canvas.overlays.text.visible = False  # only the scan is bright
    viewer.reset_view()
    qtbot.wait(50)

    def bright_centre(picture):
        grey = picture[..., :3].mean(axis=-1)
        rows, cols = np.nonzero(grey > 128)
        return rows.mean() / grey.shape[0], cols.mean() / grey.shape[1]

    axial = viewer.screenshot(canvas_only=True, flash=False)
    row, col = bright_centre(axial)
    assert col < 0.5 and row < 0.5  # patient's right on screen left, anterior at the top
    coronal = room.views.side_viewers[0].screenshot(flash=False)
    row, col = bright_centre(coronal)
    assert col < 0.5 and row < 0.5  # right on the left, superior at the top
    sagittal = room.views.side_viewers[1].screenshot(flash=False)
    row, col = bright_centre(sagittal)
    assert col < 0.5 and row < 0.5  # anterior on the left, superior at the top


def _ct_scan(tmp_path):
    volume, _ = phantom(SAGITTAL)
    hu = (volume.array[0] * 2 - 1000).astype(np.float32)  # air -1000, "tissue" around -200
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, SAGITTAL), path)
    return path


def test_window_level_presets_values_and_drag(make_napari_viewer, qtbot, tmp_path):
    viewer, room = _room(make_napari_viewer, qtbot, _ct_scan(tmp_path))
    window, views = room.window, room.views
    scan = window.scan_layer()
    assert window.modality == "CT"  # a NIfTI reaching -1000 HU
    presets = [window.preset_combo.itemText(i) for i in range(window.preset_combo.count())]
    assert presets[:6] == ["brain", "subdural", "stroke", "bone", "lung", "soft tissue/abdomen"]
    assert tuple(scan.contrast_limits) == (-150.0, 250.0)  # soft tissue/abdomen opens
    window.set_preset("brain")
    assert tuple(scan.contrast_limits) == (0.0, 80.0)
    for model in views.side_models:
        assert tuple(model.layers[scan.name].contrast_limits) == (0.0, 80.0)
    assert "W 80 L 40" in window.values_label.text() and viewer.canvas.overlays.text.text == "W 80 L 40"
    assert window.level_spin.value() == 40 and window.width_spin.value() == 80
    window.width_spin.setValue(400)
    assert tuple(scan.contrast_limits) == (-160.0, 240.0)

    # Shift-drag in the coronal view: 100 px right, 20 px down (the callback, with the events it would get)
    event = SimpleNamespace(button=1, modifiers=("Shift",), pos=(100, 100), type="mouse_press")
    drag = views._drag_window(views.side_models[0], event)
    next(drag)
    event.type, event.pos = "mouse_move", (200, 120)
    next(drag)
    assert window.current() == Window(level=40 + 20 * 2.0, width=400 + 100 * 2.0)
    assert window.values_label.text().endswith("W 600 L 80")


def test_mr_opens_with_the_percentile_window(make_napari_viewer, qtbot, tmp_path):
    volume, _ = phantom(SAGITTAL)
    path = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(volume.array[0], SAGITTAL), path)
    viewer, room = _room(make_napari_viewer, qtbot, path)
    assert room.window.modality == "" and room.window.preset_combo.count() == 1
    low, high = room.window.scan_layer().contrast_limits
    assert 100 <= low < 110 and 395 < high <= 406  # 1st..99th percentile above the minimum


def test_edit_per_class_undo_redo_interpolate_and_log(make_napari_viewer, qtbot, tmp_path):
    out = _prediction_folder(tmp_path)
    viewer, room = _room(make_napari_viewer, qtbot, tmp_path / "input", pred_dir=out)
    edit, labels = room.edit, viewer.layers["segmentation"]
    assert edit.layer is labels and edit.class_list.count() == 2
    edit.class_list.setCurrentRow(1)  # "2  block"
    assert labels.selected_label == 2
    edit.set_tool("brush")
    assert labels.mode == "paint" and viewer.layers.selection.active is labels
    for name, mode in (("eraser", "erase"), ("fill", "fill"), ("brush", "paint")):
        edit.tool_buttons[name].click()
        assert labels.mode == mode
    before = labels.data.copy()
    depth = labels.data.shape[0]
    first, last = 1, depth - 2
    edit.brush_spin.setValue(3)
    centre = np.array(labels.data.shape[1:]) // 2
    labels.paint((first, *centre), 2)  # what a brush stroke calls, with undo history
    labels.paint((last, *centre), 2)
    assert edit.edits == 2 and (labels.data[first] == 2).sum() > (before[first] == 2).sum()
    copy = room.views.side_models[0].layers["segmentation"]
    assert copy.data is labels.data  # the side views show the same edit
    edit.undo()
    assert (labels.data[last] == before[last]).all()
    edit.redo()
    assert (labels.data[last] == 2).sum() > (before[last] == 2).sum()
    filled = edit.interpolate()
    assert filled == list(range(first + 1, last)) and edit.edits == 3
    middle = (first + last) // 2
    assert labels.data[middle, centre[0], centre[1]] == 2
    edit.undo()  # one undo takes the interpolation back
    assert labels.data[middle, centre[0], centre[1]] == before[middle, centre[0], centre[1]]
    edit.redo()
    record = room.review.mark_corrected()
    assert record.edits == 3 and record.seconds >= 0 and "block" in record.classes_changed
    log = json.loads((out / LOG_NAME).read_text())["reviews"][-1]
    assert log["edits"] == 3 and log["dicom_seg"] is None  # a NIfTI case: no DICOM-SEG


def _dicom_prediction(tmp_path):
    """A study with one DICOM series (its folder named like a patient) and a predict-style output for it."""
    from medseg.inference.case_ids import case_id, relative_input
    from medseg.io.dicom_export import write_dicom_series

    study = tmp_path / "study"
    series = study / "DOE^JANE_1970" / "series_7"
    volume, mask = phantom(np.diag([1.2, 1.2, 2.0, 1.0]), shape=(16, 14, 8))
    write_dicom_series(volume, series, modality="MR", series_description="T1 axial")
    uid = str(pydicom.dcmread(next(series.iterdir())).SeriesInstanceUID)
    identifier = case_id(relative_input(series, study), uid)
    out = tmp_path / "pred"
    write_labels(mask, out / identifier / "seg.nii.gz", read_scan(series))
    report = {"input": None, "model": {"path": "models/brain-tissue-unet", "class_names": list(CLASSES)},
              "cases": [{"case_id": identifier, "input": f"dicom:{uid}", "modality": "MR", "status": "ok",
                         "qc_flags": [], "mean_uncertainty": 0.1}]}
    (out / "report.json").write_text(json.dumps(report))
    return study, out, identifier, uid


def test_corrected_dicom_case_writes_a_seg_that_dciodvfy_accepts(make_napari_viewer, qtbot, tmp_path):
    study, out, identifier, uid = _dicom_prediction(tmp_path)
    report_before = (out / "report.json").read_text()
    viewer, room = _room(make_napari_viewer, qtbot, pred_dir=out, study=study)
    review = room.review
    assert review.list.item(0).text() == "DOE^JANE_1970/series_7 \u2014 T1 axial  u=0.10"  # on screen only
    labels = viewer.layers["segmentation"]
    room.edit.set_class(2)
    room.edit.set_tool("brush")
    labels.paint((2, 3, 3), 2)
    sent = []
    review.sender = sent.append  # the PACS hook; nothing else sends
    record = review.mark_corrected()
    seg_path = out / identifier / CORRECTED_SEG_NAME
    assert record.dicom_seg == f"{identifier}/{CORRECTED_SEG_NAME}" and sent == [seg_path]
    seg = pydicom.dcmread(seg_path)
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
    errors = dciodvfy_errors(seg_path)
    if errors is None:
        import highdicom

        assert highdicom.seg.segread(seg_path).number_of_segments == 2  # dciodvfy missing: read back instead
    else:
        assert errors == []
    for travelling in (out / LOG_NAME, out / "report.json"):  # no folder names, no description
        text = travelling.read_text()
        assert "DOE" not in text and "series_7" not in text and "T1 axial" not in text
    assert (out / "report.json").read_text() == report_before


def test_review_cost_in_clicks_and_seconds(make_napari_viewer, qtbot, tmp_path, capsys):
    """One case, read and corrected through the widgets: the clicks and seconds it takes (printed)."""
    out = _prediction_folder(tmp_path)
    viewer, room = _room(make_napari_viewer, qtbot, tmp_path / "input", pred_dir=out)
    review, edit, window = room.review, room.edit, room.window
    clicks, timings = 0, {}
    start = time.perf_counter()
    review.show_case(0)  # opening the next case (Alt-N or the worklist row): 1 click
    clicks += 1
    timings["open case"] = time.perf_counter() - start
    tick = time.perf_counter()
    window.set_preset(window.preset_combo.itemText(0))  # 1 click: a preset
    edit.class_list.setCurrentRow(0)  # 1 click: the class
    edit.tool_buttons["brush"].click()  # 1 click: the brush
    labels = viewer.layers["segmentation"]
    labels.paint((2, 4, 4), 1)  # 1 stroke
    edit.undo_button.click()  # 1 click: undo a slip
    labels.paint((2, 4, 5), 1)  # 1 stroke
    clicks += 6
    timings["edit (preset, class, brush, 2 strokes, undo)"] = time.perf_counter() - tick
    tick = time.perf_counter()
    review.corrected_button.click()  # 1 click: saved, logged, next case opens
    clicks += 1
    timings["corrected + next case"] = time.perf_counter() - tick
    total = time.perf_counter() - start
    record = review.last_record
    assert record is not None and record.decision == "corrected" and record.edits == 2
    assert review.current.case_id != record.case_id
    with capsys.disabled():
        print(f"\nreview cost: {clicks} clicks/strokes, {total:.2f} s of software time; "
              + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    assert clicks == 8 and total < 30
