"""The Segment dock shows the Predictor's mask where the anatomy is: on a non-cubic, oblique,
anisotropic scan with two off-centre structures, the labels layer equals the prediction mapped to
display, and napari's own layer affine puts each class's centroid on the structure in world mm."""

from __future__ import annotations

import numpy as np
import pytest
from medseg_napari._layers import add_layer, image_layers
from medseg_napari.segment_widget import SegmentWidget
from placement_helpers import (
    TOLERANCE_MM,
    register_threshold_network,
    scene,
    world_centroid,
    write_threshold_model,
)

from medseg.inference.predictor import Predictor
from medseg.review.display import display_grid
from medseg.review.uncertainty_view import near_labels


def _napari_world_to_ras(point: np.ndarray) -> np.ndarray:
    """napari world (S, P, L) mm -> RAS mm."""
    s, p, left = point
    return np.array([-left, -p, s])


@pytest.mark.filterwarnings("ignore:Non-orthogonal slicing")
def test_segment_dock_layer_is_the_prediction_on_display_and_in_place(
    make_napari_viewer, qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    register_threshold_network(monkeypatch)
    write_threshold_model(tmp_path / "models" / "threshold")
    volume, truth = scene("fine-oblique")  # 56 x 40 x 22 voxels of 0.9 x 1.3 x 2.6 mm, rotated
    viewer = make_napari_viewer()
    add_layer(viewer, image_layers(volume, name="scan")[0])
    widget = SegmentWidget(viewer, models_dir=tmp_path / "models")
    worker = widget.run()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=180_000):  # generous: a loaded 2-core CI machine
        pass
    assert widget.result is not None, widget.status.text()
    layer = widget.result.labels

    expected = Predictor.from_model(tmp_path / "models" / "threshold").predict(volume)
    grid = display_grid(volume.affine, volume.spatial_shape)
    assert layer.data.shape == viewer.layers["scan"].data.shape == grid.display_shape
    assert np.array_equal(layer.data, grid.to_display(expected.labels.array))
    # Shown near the contours (the dock's default), in place; the full map kept for the "near contours only" box.
    near = near_labels(expected.uncertainty, expected.labels.array, volume.spacing)
    np.testing.assert_allclose(widget.result.uncertainty.data, grid.to_display(near), atol=1e-6)
    np.testing.assert_allclose(widget.result.uncertainty.metadata["medseg_uncertainty"]["full"],
                               grid.to_display(expected.uncertainty), atol=1e-6)

    for value in (1, 2):
        voxels = np.argwhere(np.asarray(layer.data) == value).mean(axis=0)
        shown = _napari_world_to_ras(np.asarray(layer.data_to_world(voxels), dtype=float))
        error = np.linalg.norm(shown - world_centroid(truth, volume.affine, value))
        assert error < TOLERANCE_MM, (value, error)
    # The class table counts the shown voxels of each class.
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    assert [row.volume_ml for row in widget.result.rows] == pytest.approx(
        [(expected.labels.array == v).sum() * voxel_ml for v in (1, 2)], rel=1e-6)
