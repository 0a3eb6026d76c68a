"""A `medseg predict` output (pseudonymous case folders + report.json) pairs with references by input name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evaluation_helpers import EvaluationSet, write_case

from medseg.errors import InputError
from medseg.evaluation.cases import match_cases

UID = "1.2.826.0.1.3680043.8.498.1"


def _as_predict_output(root: EvaluationSet, inputs: dict[str, dict]) -> dict[str, str]:
    """Move pred/NAME/ to pred/case_<n>/ and write the report.json predict would; returns {name: case id}."""
    cases, ids = [], {}
    for index, (name, entry) in enumerate(inputs.items()):
        case_id = f"case_{index:010x}"
        ids[name] = case_id
        if (root.pred / name).is_dir():
            shutil.move(root.pred / name, root.pred / case_id)
        cases.append({"case_id": case_id, "status": "ok", "outputs": ["seg.nii.gz"], **entry})
    (root.pred / "report.json").write_text(json.dumps({"cases": cases}))
    return ids


def test_predict_output_pairs_by_input_stem_channel_suffix_and_series_uid(evaluation_set: EvaluationSet) -> None:
    shutil.move(evaluation_set.truth / "case_c.nii.gz", evaluation_set.truth / f"{UID}.nii.gz")
    ids = _as_predict_output(evaluation_set, {
        "case_a": {"input": "sub/case_a.nii.gz", "kind": "nifti"},
        "case_b": {"input": "case_b_0000.nii.gz", "kind": "nifti"},  # nnU-Net channel suffix
        "case_c": {"input": f"dicom:{UID}", "kind": "dicom-series", "series_uid": UID},
    })
    cases = match_cases(evaluation_set.pred, evaluation_set.truth, evaluation_set.images)
    assert [c.case_id for c in cases] == [UID, "case_a", "case_b"]  # sorted by reference name
    assert [c.prediction.parent.name for c in cases] == [ids["case_c"], ids["case_a"], ids["case_b"]]
    assert all(c.probabilities is not None and c.probabilities.parent == c.prediction.parent for c in cases)
    assert cases[1].image == evaluation_set.images / "case_a_0000.nii.gz"


def test_unpaired_references_are_listed_with_their_cause(evaluation_set: EvaluationSet) -> None:
    write_case(evaluation_set, "case_d", 0)
    _as_predict_output(evaluation_set, {
        "case_a": {"input": "case_a.nii.gz", "kind": "nifti"},
        "case_b": {"input": "case_b.nii.gz", "kind": "nifti", "status": "failed", "stage": "read",
                   "reason": "truncated file"},
        "case_d": {"input": "other/case_a.nrrd", "kind": "nrrd"},  # a second input named case_a
    })
    with pytest.raises(InputError) as caught:
        match_cases(evaluation_set.pred, evaluation_set.truth)
    message = str(caught.value)
    assert "cannot pair 4 of 4 reference(s)" in message
    assert "case_a: two predicted inputs" in message
    assert "case_b: its case case_0000000001 failed (read: truncated file)" in message
    assert "case_c: no input of that name in the report" in message
    assert "case_d: no input of that name" in message
    assert "SeriesInstanceUID" in message  # the hint says how references are named


def test_predictions_without_a_reference_are_left_out(evaluation_set: EvaluationSet) -> None:
    _as_predict_output(evaluation_set, {
        "case_a": {"input": "case_a.nii.gz", "kind": "nifti"},
        "case_b": {"input": "case_b.nii.gz", "kind": "nifti"},
        "case_c": {"input": "case_c.nii.gz", "kind": "nifti"},
    })
    (evaluation_set.truth / "case_c.nii.gz").unlink()
    assert [c.case_id for c in match_cases(evaluation_set.pred, evaluation_set.truth)] == ["case_a", "case_b"]


def test_folders_named_by_case_still_pair_without_a_report(evaluation_set: EvaluationSet) -> None:
    cases = match_cases(evaluation_set.pred, evaluation_set.truth)
    assert [c.prediction.parent.name for c in cases] == ["case_a", "case_b", "case_c"]


def test_a_broken_report_is_named(evaluation_set: EvaluationSet) -> None:
    (evaluation_set.pred / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the predict report"):
        match_cases(evaluation_set.pred, evaluation_set.truth)
