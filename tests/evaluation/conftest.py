"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluation_helpers import EvaluationSet, write_case


@pytest.fixture
def evaluation_set(tmp_path: Path) -> EvaluationSet:
    """case_a perfect, case_b shifted by one voxel, case_c shifted by two and missing 'right'."""
    root = EvaluationSet(tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "pred")
    write_case(root, "case_a", 0)
    write_case(root, "case_b", 1)
    write_case(root, "case_c", 2, drop_right=True)
    return root
