"""`medseg evaluate` in-process: the table on stdout, the report on disk, errors as one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from medseg_cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_helpers import AFFINE, EvaluationSet, write_case  # noqa: E402


def _set(tmp_path: Path) -> EvaluationSet:
    root = EvaluationSet(tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "pred")
    write_case(root, "case_a", 0)
    write_case(root, "case_b", 1)
    return root


def test_evaluate_prints_the_table_with_class_names_from_dataset_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = _set(tmp_path)
    labels = tmp_path / "dataset.json"
    labels.write_text(json.dumps({"name": "toy", "labels": {"0": "background", "1": "gm", "2": "wm"},
                                  "modality": {"0": "T1"}, "training": [], "test": []}))
    status = main(["evaluate", "--pred", str(root.pred), "--truth", str(root.truth), "--out", str(tmp_path / "out"),
                   "--images", str(root.images), "--tolerance-mm", "1.0", "--labels", str(labels)])
    out = capsys.readouterr().out
    assert status == 0
    assert "| Class | Metric | Model mean ± SD" in out and "| gm | Dice | 0.929 ± 0.101 |" in out
    assert "2 case(s) evaluated" in out and "ECE" in out
    assert (tmp_path / "out" / "summary.md").is_file() and (tmp_path / "out" / "overlays.png").is_file()


def test_evaluate_grid_mismatch_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _set(tmp_path)
    path = root.pred / "case_b" / "seg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(nib.load(path).dataobj)[:, :, :-1], AFFINE), path)
    status = main(["evaluate", "--pred", str(root.pred), "--truth", str(root.truth)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("medseg evaluate: error: ") and str(path) in err and "case_b.nii.gz" in err
