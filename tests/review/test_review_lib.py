"""medseg.review without Qt: display reorientation, class table, worklist order, review log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.errors import InputError, OutputError
from medseg.io import read_labels, write_labels
from medseg.review.class_table import class_table, largest_slice, voxel_volume_ml
from medseg.review.display import display_grid, world_from_ras
from medseg.review.review_log import LOG_NAME, REVIEWED_NAME, changed_classes, read_review_log, save_review
from medseg.review.worklist import load_worklist
from medseg.types import Volume

SAGITTAL = np.array([[0, 0, -1.5, 10], [1, 0, 0, -5], [0, -2, 0, 3], [0, 0, 0, 1.0]])


def _oblique() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]]) \
        @ affine[:3, :3]
    affine[:3, 3] = (4, -7, 11)
    return affine


@pytest.mark.parametrize("affine", [np.diag([2.0, 2, 3, 1]), SAGITTAL, _oblique()])
def test_display_grid_round_trip_and_world(affine):
    rng = np.random.default_rng(1)
    array = rng.random((2, 5, 6, 7))
    grid = display_grid(affine, array.shape)
    shown = grid.to_display(array)
    assert shown.shape == (2, *grid.display_shape)
    np.testing.assert_array_equal(grid.to_source(shown), array)
    for index in [(0, 0, 0), (4, 5, 6), (1, 3, 2)]:
        display = grid.display_index(index)
        assert shown[(1, *display)] == array[(1, *index)]
        np.testing.assert_allclose(grid.affine @ [*display, 1], world_from_ras(affine) @ [*index, 1], atol=1e-9)
    # What remains in the layer affine is at most the small oblique rotation: a dominant diagonal.
    linear = grid.affine[:3, :3]
    assert np.all(np.abs(np.diag(linear)) > np.abs(linear - np.diag(np.diag(linear))).max(axis=1))


def test_world_is_lps_reversed():
    # RAS (x=10, y=20, z=30) is LPS (-10, -20, 30): world (S, P, L) = (30, -20, -10).
    np.testing.assert_allclose(world_from_ras(np.eye(4)) @ [10, 20, 30, 1], [30, -20, -10, 1])


def test_class_table_numbers():
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[1, :2, :3] = 1  # 6 voxels on slice 1
    labels[2, :, :] = 1  # 30 voxels on slice 2 -> largest
    labels[3, 0, 0] = 2
    uncertainty = np.full(labels.shape, 0.1)
    uncertainty[labels == 2] = 0.8
    rows = class_table(labels, ("bg", "liver", "lesion", "spleen"), np.diag([2.0, 2, 2.5, 1]),
                       uncertainty=uncertainty, qc_flags=("lesion volume out of range",))
    assert [r.name for r in rows] == ["liver", "lesion", "spleen"]
    assert rows[0].voxels == 36 and rows[0].volume_ml == pytest.approx(36 * 0.01)
    assert rows[0].largest_slice == 2 and rows[1].largest_slice == 3
    assert rows[0].mean_uncertainty == pytest.approx(0.1) and rows[1].mean_uncertainty == pytest.approx(0.8)
    assert rows[1].flags == ("lesion volume out of range",)
    assert rows[2].flags == ("empty",) and rows[2].largest_slice is None and rows[2].mean_uncertainty is None
    assert voxel_volume_ml(np.diag([1.0, 1, 1, 1])) == pytest.approx(0.001)
    assert largest_slice(np.zeros((2, 2, 2), bool)) is None


def _volume(shape=(6, 7, 8)) -> Volume:
    return Volume(array=np.zeros((1, *shape), np.float32), affine=np.diag([1.5, 1.5, 2.0, 1.0]))


def _case(root, case_id, flags, uncertainty, status="ok"):
    folder = root / case_id
    folder.mkdir(parents=True)
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[2:4, 2:4, 2:4] = 1
    write_labels(labels, folder / "seg.nii.gz", _volume())
    (folder / "case.json").write_text(json.dumps({
        "input": f"{case_id}.nii.gz", "status": status, "qc_flags": flags, "mean_uncertainty": uncertainty,
    }))
    return labels


def test_worklist_order_and_decisions(tmp_path):
    out = tmp_path / "pred"
    _case(out, "calm", [], 0.05)
    _case(out, "unsure", [], 0.4)
    _case(out, "flagged", ["empty prediction", "volume out of range"], 0.01)
    _case(out, "failed", [], None, status="failed")
    _case(out, "one_flag", ["empty prediction"], 0.3)
    items = load_worklist(out)
    assert [i.case_id for i in items] == ["flagged", "one_flag", "failed", "unsure", "calm"]
    assert items[0].prediction == out / "flagged" / "seg.nii.gz" and items[0].scan is None
    (out / LOG_NAME).write_text(json.dumps({"version": 1, "reviews": [{"case_id": "flagged", "decision": "accepted"}]}))
    items = load_worklist(out)
    assert items[-1].case_id == "flagged" and items[-1].decision == "accepted"
    with pytest.raises(InputError, match="holds no cases"):
        load_worklist(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_save_review_writes_next_to_prediction_and_logs(tmp_path):
    out = tmp_path / "pred"
    original = _case(out, "c1", [], 0.1)
    before = (out / "c1" / "seg.nii.gz").read_bytes()
    edited = original.copy()
    edited[0, 0, 0] = 2
    edited[2, 2, 2] = 0
    record = save_review(case_id="c1", decision="corrected", seconds=12.34, original=original, edited=edited,
                         reference=_volume(), class_names=("bg", "liver", "lesion"), case_dir=out / "c1",
                         log_path=out / LOG_NAME, prediction=out / "c1" / "seg.nii.gz")
    assert record.classes_changed == ("liver", "lesion") and record.voxels_changed == 2
    np.testing.assert_array_equal(read_labels(out / "c1" / REVIEWED_NAME).array, edited)
    assert (out / "c1" / "seg.nii.gz").read_bytes() == before
    save_review(case_id="c2", decision="accepted", seconds=3, original=original, edited=original,
                reference=_volume(), class_names=("bg", "liver"), case_dir=out / "c2", log_path=out / LOG_NAME)
    log = read_review_log(out / LOG_NAME)
    assert [(e["case_id"], e["decision"], e["seconds"], e["classes_changed"]) for e in log] == [
        ("c1", "corrected", 12.3, ["liver", "lesion"]), ("c2", "accepted", 3.0, [])]
    assert log[0]["reviewed_labels"] == "c1/seg_reviewed.nii.gz" and log[0]["prediction"] == "c1/seg.nii.gz"
    assert log[1]["reviewed_labels"] is None and not (out / "c2").exists()
    with pytest.raises(InputError, match="unknown review decision"):
        save_review(case_id="c1", decision="maybe", seconds=1, original=original, edited=original,
                    reference=_volume(), class_names=(), case_dir=out, log_path=out / LOG_NAME)


def test_review_refuses_to_replace_prediction(tmp_path):
    original = np.zeros((6, 7, 8), np.uint8)
    edited = original.copy()
    edited[1, 1, 1] = 1
    with pytest.raises(OutputError, match="would replace the model's output"):
        save_review(case_id="c", decision="corrected", seconds=1, original=original, edited=edited,
                    reference=_volume(), class_names=("bg", "x"), case_dir=tmp_path, log_path=tmp_path / LOG_NAME,
                    prediction=tmp_path / REVIEWED_NAME)


def test_changed_classes():
    a = np.array([[[0, 1, 2]]])
    assert changed_classes(a, np.array([[[0, 1, 0]]]), ("bg", "x")) == ("label 2",)
