"""Segment, Review and Activations docks driven through their attributes and the viewer's key bindings."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from medseg_napari._layers import add_layer, image_layers
from medseg_napari.activations_widget import ActivationsWidget
from medseg_napari.review_widget import ReviewWidget
from medseg_napari.segment_widget import SegmentWidget
from napari_phantoms import SAGITTAL, oblique_affine, phantom

from medseg.io import read_labels, read_scan, write_labels
from medseg.review.review_log import LOG_NAME, REVIEWED_NAME

ROOT_MODELS = Path(__file__).resolve().parents[2] / "models"

CLASSES = ("background", "ball", "block")


def _press(viewer, key):
    assert viewer.window._qt_viewer._key_map_handler.press_key(key), key


def test_segment_widget_shows_contours_uncertainty_table_and_jumps(make_napari_viewer):
    viewer = make_napari_viewer()
    volume, mask = phantom(SAGITTAL)
    add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = SegmentWidget(viewer, models_dir="/nonexistent")
    assert widget.scan_combo.currentText() == "scan" and widget.current_volume() is volume
    uncertainty = np.where(mask == 2, 0.9, 0.1).astype(np.float32)
    result = widget.show(volume, mask, class_names=CLASSES, colors=((0, 0, 0), (1, 0, 0), (0, 1, 0)),
                         uncertainty=uncertainty, qc_flags=("block volume out of range",))
    assert [layer.name for layer in viewer.layers] == ["scan", "uncertainty", "segmentation"]
    assert result.labels.contour == 1
    np.testing.assert_allclose(result.labels.colormap.map(np.array([1]))[0], (1, 0, 0, 1))
    assert widget.table.rowCount() == 2
    assert widget.table.item(1, 0).text() == "block" and widget.table.item(1, 3).text() == "block volume out of range"
    voxel_ml = np.prod(volume.spacing) / 1000
    assert float(widget.table.item(0, 1).text()) == pytest.approx((mask == 1).sum() * voxel_ml, abs=0.05)
    assert float(widget.table.item(1, 2).text()) == pytest.approx(0.9)

    world = widget.jump_to_row(1)  # the block: its largest display slice
    row = result.rows[1]
    assert viewer.dims.point[0] == pytest.approx(world[0])
    assert result.labels.world_to_data(viewer.dims.point)[0] == pytest.approx(row.largest_slice, abs=0.5)
    assert np.any(result.labels.data[row.largest_slice] == 2)

    widget.contour_check.setChecked(False)
    assert result.labels.contour == 0
    widget.uncertainty_check.setChecked(False)
    assert not result.uncertainty.visible
    widget.opacity_slider.setValue(30)
    assert result.uncertainty.opacity == pytest.approx(0.3)


def test_segment_widget_shows_uncertainty_near_the_contours_and_everywhere_on_request(make_napari_viewer):
    viewer = make_napari_viewer()
    volume, mask = phantom(SAGITTAL)  # voxels 1.2 x 1.2 x 1.5 mm
    add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = SegmentWidget(viewer, models_dir="/nonexistent")
    corner = np.where(mask == 2, 2, 0).astype(np.uint8)  # only the corner block [:3, :2, :4] labelled
    uncertainty = np.full(mask.shape, 0.6, np.float32)
    result = widget.show(volume, corner, class_names=CLASSES, uncertainty=uncertainty)
    assert widget.near_check.isChecked()  # the default: near the contours only
    shown = result.uncertainty.data
    assert shown.shape == result.labels.data.shape
    assert 0 < np.count_nonzero(shown) < shown.size  # the far corner (> 10 mm from the block) is dark
    far = result.labels.metadata["medseg_grid"].to_display(np.indices(mask.shape)[0] >= 12)
    assert not shown[far].any() and np.all(shown[result.labels.data == 2] == np.float32(0.6))
    widget.near_check.setChecked(False)
    np.testing.assert_array_equal(result.uncertainty.data,
                                  result.labels.metadata["medseg_grid"].to_display(uncertainty))
    widget.set_uncertainty_near(True)
    assert widget.near_check.isChecked() and np.count_nonzero(result.uncertainty.data) == np.count_nonzero(shown)
    assert widget.table.item(1, 0).text() == "block" and float(widget.table.item(1, 2).text()) == pytest.approx(0.6)


def _prediction_folder(tmp_path):
    """An input folder of two scans and a `medseg predict`-style output folder for them."""
    inputs, out = tmp_path / "input", tmp_path / "pred"
    inputs.mkdir()
    entries = []
    for case_id, affine, flags, uncertainty in (("calm", SAGITTAL, [], 0.05),
                                                 ("unsure", oblique_affine(), ["empty prediction"], 0.3)):
        volume, mask = phantom(affine)
        nib.save(nib.Nifti1Image(volume.array[0], affine), inputs / f"{case_id}.nii.gz")
        volume = read_scan(inputs / f"{case_id}.nii.gz")
        write_labels(mask, out / case_id / "seg.nii.gz", volume)
        nib.save(nib.Nifti1Image(np.full(mask.shape, uncertainty, np.float32), affine),
                 out / case_id / "uncertainty.nii.gz")
        entries.append({"case_id": case_id, "input": f"{case_id}.nii.gz", "status": "ok", "qc_flags": flags,
                        "mean_uncertainty_in_structures": uncertainty})
    report = {"input": str(inputs), "model": {"class_names": list(CLASSES)}, "cases": entries}
    (out / "report.json").write_text(json.dumps(report))
    return out


def test_review_workflow_with_shortcuts(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    out = _prediction_folder(tmp_path)
    seg_bytes = (out / "unsure" / "seg.nii.gz").read_bytes()
    review = ReviewWidget(viewer)
    items = review.open_folder(out)
    assert [item.case_id for item in items] == ["unsure", "calm"]  # the flagged, less certain case first
    assert review.current.case_id == "unsure"
    labels = review.segment.result.labels
    assert labels.contour == 1 and "uncertainty" in viewer.layers and "scan" in viewer.layers

    _press(viewer, "Alt-T")
    assert labels.contour == 0
    _press(viewer, "Alt-T")
    assert labels.contour == 1
    _press(viewer, "Alt-U")
    assert not review.segment.result.uncertainty.visible
    _press(viewer, "Alt-U")
    assert review.segment.result.uncertainty.visible

    labels.data[labels.data == 2] = 0  # the reviewer erases the block ...
    labels.data[0, 0, 0] = 1  # ... and paints one voxel of ball
    _press(viewer, "Alt-C")  # corrected -> saved, next case opens
    assert review.current.case_id == "calm"
    log = json.loads((out / LOG_NAME).read_text())["reviews"]
    assert [(e["case_id"], e["decision"], e["classes_changed"]) for e in log] == [
        ("unsure", "corrected", ["ball", "block"])]
    assert log[0]["seconds"] >= 0 and log[0]["reviewed_labels"] == "unsure/seg_reviewed.nii.gz"
    assert (out / "unsure" / "seg.nii.gz").read_bytes() == seg_bytes  # the model's output is untouched
    reviewed = read_labels(out / "unsure" / REVIEWED_NAME).array
    assert not np.any(reviewed == 2) and np.count_nonzero(reviewed == 1) == np.count_nonzero(
        read_labels(out / "unsure" / "seg.nii.gz").array == 1) + 1

    _press(viewer, "Alt-A")  # accept "calm" unchanged: logged, no labels written
    log = json.loads((out / LOG_NAME).read_text())["reviews"]
    assert log[-1]["case_id"] == "calm" and log[-1]["decision"] == "accepted" and log[-1]["voxels_changed"] == 0
    assert not (out / "calm" / REVIEWED_NAME).exists()

    _press(viewer, "Alt-P")
    assert review.current.case_id == "unsure"  # reopened from its review, not the model's output
    assert not np.any(review.segment.result.labels.data == 2)
    _press(viewer, "Alt-N")
    assert review.current.case_id == "calm"


def test_activations_dock_adds_layers(make_napari_viewer):
    from medseg.config import NetworkConfig
    from medseg.networks import build_network

    viewer = make_napari_viewer()
    volume, _ = phantom(oblique_affine())
    scan = add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = ActivationsWidget(viewer)
    network = build_network(NetworkConfig(name="unet", out_channels=3, channels=(4, 8), strides=(2,),
                                          num_res_units=0)).eval()
    widget.set_network(network)
    assert widget.layer_combo.count() >= 2
    widget.layer_combo.setCurrentIndex(0)
    widget.channels_edit.setText("0, 2")
    layers = widget.show_activations()
    assert [layer.name for layer in layers] == [f"activation {widget.layer_combo.currentText()} ch{c}" for c in (0, 2)]
    for layer in layers:
        assert layer.data.shape == scan.data.shape
        np.testing.assert_allclose(layer.affine.affine_matrix, scan.affine.affine_matrix)
        assert np.ptp(layer.data) > 0
    widget.show_activations()  # a second run replaces the layers
    assert sum(layer.name.startswith("activation") for layer in viewer.layers) == 2


def _tiny_model_folder(folder):
    """An untrained 2-level UNet model folder (model.yaml, weights.pt, model_card.json) for the widget."""
    import torch
    import yaml

    from medseg.config import ExperimentConfig, config_to_dict, load_config
    from medseg.inference.model_card import ModelCard, default_colors, write_card_text
    from medseg.networks import build_network

    config = load_config(ExperimentConfig, {
        "network": {"name": "unet", "in_channels": 1, "out_channels": 3, "channels": [2, 4], "strides": [2],
                    "num_res_units": 0, "patch_size": [16, 16, 16], "window_size": [16, 16, 16]},
        "transforms": {"spacing": [], "augment": {"enabled": False}},
    })
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    torch.manual_seed(0)
    torch.save(build_network(config.network).state_dict(), folder / "weights.pt")
    card = ModelCard(name="tiny", class_names=CLASSES, colors=default_colors(3), modalities=("MR",), network="unet")
    (folder / "model_card.json").write_text(write_card_text(card))
    return folder


def test_segment_widget_runs_a_model_and_activations_follow_it(make_napari_viewer, qtbot, tmp_path):
    """A real Predictor in a worker thread: labels + uncertainty layers, table, progress; then activations."""
    _tiny_model_folder(tmp_path / "models" / "tiny")
    viewer = make_napari_viewer()
    volume, _ = phantom(SAGITTAL, shape=(16, 16, 16))
    volume = volume.with_array(volume.array, channel_names=("MR",))
    add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = SegmentWidget(viewer, models_dir=tmp_path / "models")
    assert widget.model_combo.currentText() == "tiny"
    worker = widget.run()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=180_000):  # generous: a loaded 2-core CI machine
        pass
    assert {"segmentation", "uncertainty"} <= {layer.name for layer in viewer.layers}, widget.status.text()
    assert widget.result.labels.data.shape == viewer.layers["scan"].data.shape
    assert widget.table.rowCount() == 2 and widget.progress.value() == 100
    assert widget.result.labels.colormap.map(np.array([1]))[0][3] == 1

    activations = ActivationsWidget(viewer, widget)
    assert activations.use_segment_model() and activations.layer_combo.count() >= 2
    layers = activations.show_activations()
    assert len(layers) == 2 and layers[0].data.shape == viewer.layers["scan"].data.shape  # 2 channels in layer 0


def test_view_setup_opens_worklist_with_docks(make_napari_viewer, tmp_path):
    """What `medseg view SCAN_DIR --pred PRED_DIR` sets up, without the event loop."""
    from medseg_napari.viewer_setup import set_up_viewer

    viewer = make_napari_viewer()
    out = _prediction_folder(tmp_path)
    review = set_up_viewer(viewer, tmp_path / "input", pred_dir=out)
    assert review.current.case_id == "unsure"
    assert {"scan", "segmentation", "uncertainty"} <= {layer.name for layer in viewer.layers}
    assert {"medseg review", "medseg activations"} <= set(viewer.window.dock_widgets)


def test_segment_widget_shows_each_models_use_and_limits_on_its_name(make_napari_viewer, tmp_path):
    """The card's description, intended use and known limitations as the tooltip of the model's name."""
    from qtpy.QtCore import Qt

    tiny = _tiny_model_folder(tmp_path / "models" / "tiny")
    card = json.loads((tiny / "model_card.json").read_text())
    card.update(description="Tiny test model.", intended_use="Tests only.", limitations=["Never seen a head."])
    (tiny / "model_card.json").write_text(json.dumps(card))
    broken = _tiny_model_folder(tmp_path / "models" / "broken")
    (broken / "model_card.json").write_text(json.dumps({**card, "limitation": ["misspelt"]}))
    widget = SegmentWidget(make_napari_viewer(), models_dir=tmp_path / "models")
    tips = {widget.model_combo.itemText(i): widget.model_combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
            for i in range(widget.model_combo.count())}
    assert tips["tiny"] == "Tiny test model.\n\nIntended use: Tests only.\n\nKnown limitations:\n- Never seen a head."
    assert "unreadable model card" in tips["broken"] and "unknown keys ['limitation']" in tips["broken"]
    widget.model_combo.setCurrentIndex(widget.model_combo.findText("tiny"))
    assert widget.model_combo.toolTip() == tips["tiny"]
    widget.add_model(ROOT_MODELS / "brain-tissue-unet")
    assert "Known limitations:" in widget.model_combo.toolTip() and "outline" in widget.model_combo.toolTip()
