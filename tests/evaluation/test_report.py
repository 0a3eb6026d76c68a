"""evaluate_folders on a 3-case folder: tables, figures, calibration, and clear errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.image
import nibabel as nib
import numpy as np
import pytest
from evaluation_helpers import AFFINE, CLASS_NAMES, EvaluationSet, write_case

from medseg.errors import InputError
from medseg.evaluation.report import evaluate_folders


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _png_variance(path: Path) -> float:
    return float(np.var(matplotlib.image.imread(path)[..., :3]))


def test_report_on_three_cases(evaluation_set: EvaluationSet, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = evaluate_folders(evaluation_set.pred, evaluation_set.truth, out, CLASS_NAMES, 2.0,
                              images_dir=evaluation_set.images)
    assert result.case_ids == ("case_a", "case_b", "case_c")
    assert result.baseline_label == 0

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 3 * 2 * 2  # cases x foreground classes x (model, baseline)
    by_key = {(r["case_id"], r["class"], r["method"]): r for r in rows}
    assert float(by_key["case_a", "left", "model"]["dice"]) == 1.0
    assert float(by_key["case_b", "left", "model"]["dice"]) == pytest.approx(2 * 6 / 14)  # 7 rows, 6 overlap
    assert float(by_key["case_b", "left", "model"]["hd95_mm"]) == pytest.approx(1.5)  # one voxel along j
    assert by_key["case_c", "right", "model"]["hd95_mm"] == "nan"
    assert float(by_key["case_c", "right", "model"]["volume_diff_percent"]) == -100.0
    assert float(by_key["case_a", "left", "baseline"]["dice"]) == 0.0
    assert float(by_key["case_a", "left", "model"]["volume_crps_ml"]) >= 0

    summary = result.summary["model"]["right"]
    assert summary["dice"]["n"] == 3 and summary["hd95_mm"]["n"] == 2  # the missed structure has no HD95
    assert summary["dice"]["mean"] == pytest.approx((1 + 2 * 6 / 14 + 0) / 3)
    assert summary["dice"]["median"] == pytest.approx(2 * 6 / 14)

    markdown = (out / "summary.md").read_text()
    assert "| Model mean ± SD | Model median | Baseline mean ± SD | Baseline median |" in markdown
    assert "| left | Dice | 0.857 ± 0.143 | 0.857 | 0.000 ± 0.000 | 0.000 |" in markdown
    assert "(n=2/3)" in markdown and "Expected calibration error" in markdown

    content = _strict_json(out / "metrics.json")
    assert content["settings"]["class_names"] == list(CLASS_NAMES)
    assert len(content["cases"]) == 12 and content["uncertainty"]["ece"] == pytest.approx(result.uncertainty["ece"])
    # probabilities 0.8 on the predicted label; accuracy 1 in case_a, lower elsewhere
    assert 0 < result.uncertainty["ece"] < 0.2
    assert math.isnan(result.uncertainty["per_case"][0]["error_auroc"])  # no errors in case_a
    for name in ("dice_boxplot.png", "overlays.png", "reliability.png"):
        assert _png_variance(out / name) > 1e-3, name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_flat_prediction_layout_without_probabilities(evaluation_set: EvaluationSet, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for case in ("case_a", "case_b", "case_c"):
        (flat / f"{case}.nii.gz").write_bytes((evaluation_set.pred / case / "seg.nii.gz").read_bytes())
    result = evaluate_folders(flat, evaluation_set.truth, tmp_path / "out", None, 2.0)
    assert result.class_names == ("background", "class_1", "class_2")
    assert result.uncertainty is None
    assert not (tmp_path / "out" / "reliability.png").exists()
    assert _png_variance(tmp_path / "out" / "overlays.png") > 1e-3  # contours on a plain background


def test_prediction_off_the_reference_grid_names_both_files(evaluation_set: EvaluationSet, tmp_path: Path) -> None:
    path = evaluation_set.pred / "case_b" / "seg.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), AFFINE @ np.diag([1.0, 1.0, 1.1, 1.0])), path)
    with pytest.raises(InputError) as caught:
        evaluate_folders(evaluation_set.pred, evaluation_set.truth, tmp_path / "out", CLASS_NAMES)
    message = str(caught.value)
    assert str(path) in message and str(evaluation_set.truth / "case_b.nii.gz") in message
    assert "grid" in message


def test_missing_prediction_and_unknown_label_are_errors(evaluation_set: EvaluationSet, tmp_path: Path) -> None:
    write_case(EvaluationSet(evaluation_set.images, evaluation_set.truth, tmp_path / "elsewhere"), "case_d", 0)
    with pytest.raises(InputError, match="no prediction for 1 reference case"):
        evaluate_folders(evaluation_set.pred, evaluation_set.truth, tmp_path / "out", CLASS_NAMES)
    (evaluation_set.truth / "case_d.nii.gz").unlink()
    with pytest.raises(InputError, match="label value 2 but only 2 classes"):
        evaluate_folders(evaluation_set.pred, evaluation_set.truth, tmp_path / "out", CLASS_NAMES[:2])
