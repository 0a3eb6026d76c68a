"""Volume / LabelVolume invariants and geometry helpers."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.types import (
    LabelVolume,
    Volume,
    orientation_codes,
    source_name,
    spacing_from_affine,
)


def test_spacing_and_orientation_from_affine() -> None:
    affine = np.array([[-0.5, 0, 0, 10], [0, 0, 2.0, -3], [0, 1.5, 0, 4], [0, 0, 0, 1]])
    assert spacing_from_affine(affine) == pytest.approx((0.5, 1.5, 2.0))
    assert orientation_codes(affine) == "LSA"
    volume = Volume(array=np.zeros((2, 3, 4, 5), np.float32), affine=affine, channel_names=("T1", "T2"))
    assert volume.spatial_shape == (3, 4, 5)
    assert volume.spacing == pytest.approx((0.5, 1.5, 2.0))
    assert volume.orientation == "LSA"
    single = volume.with_array(np.ones((1, 3, 4, 5), np.float32), channel_names=("T1",))
    assert single.channel_names == ("T1",) and single.affine is affine


def test_invariants_are_enforced() -> None:
    with pytest.raises(ValueError, match=r"\(C, I, J, K\)"):
        Volume(array=np.zeros((3, 4, 5)), affine=np.eye(4))
    with pytest.raises(ValueError, match="2 channel names for 1 channels"):
        Volume(array=np.zeros((1, 3, 4, 5)), affine=np.eye(4), channel_names=("a", "b"))
    with pytest.raises(ValueError, match="integers"):
        LabelVolume(array=np.zeros((3, 4, 5), np.float32), affine=np.eye(4))
    assert LabelVolume(array=np.zeros((3, 4, 5), np.uint8), affine=np.eye(4) * 2).spacing == (2, 2, 2)


def test_source_name_strips_medical_suffixes() -> None:
    assert source_name("/x/case_001.nii.gz") == "case_001"
    assert source_name("scan.mha") == "scan"
    assert source_name("series_folder") == "series_folder"
