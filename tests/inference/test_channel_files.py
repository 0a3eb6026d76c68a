"""CASE_0000, CASE_0001 ... files of one case become one multi-channel source for a multi-modality model."""

from __future__ import annotations

from pathlib import Path

from medseg.inference.channel_files import group_channel_files
from medseg.io.discover import ScanSource


def _nifti(path: str) -> ScanSource:
    return ScanSource(path=Path(path), kind="nifti", description=Path(path).name)


def test_complete_sets_group_in_channel_order_and_keep_their_place() -> None:
    sources = [_nifti("in/a_0001.nii.gz"), _nifti("in/a_0000.nii.gz"), _nifti("in/other.nii.gz"),
               _nifti("in/b_0000.nii.gz"), _nifti("in/b_0001.nii.gz")]
    grouped = group_channel_files(sources, channels=2)
    assert [(s.path.name, [f.name for f in s.files], s.description) for s in grouped] == [
        ("a_0000.nii.gz", ["a_0000.nii.gz", "a_0001.nii.gz"], "a"),
        ("other.nii.gz", [], "other.nii.gz"),
        ("b_0000.nii.gz", ["b_0000.nii.gz", "b_0001.nii.gz"], "b"),
    ]


def test_incomplete_sets_other_folders_and_single_channel_models_stay_apart() -> None:
    sources = [_nifti("in/a_0000.nii.gz"), _nifti("in/sub/a_0001.nii.gz"), _nifti("in/c_0000.nii.gz"),
               _nifti("in/c_0002.nii.gz"), ScanSource(path=Path("in/d_0000.nrrd"), kind="nrrd"),
               _nifti("in/d_0001.nii.gz")]
    assert group_channel_files(sources, channels=2) == sources
    pair = [_nifti("in/a_0000.nii.gz"), _nifti("in/a_0001.nii.gz")]
    assert group_channel_files(pair, channels=1) == pair
    assert group_channel_files(pair, channels=3) == pair  # a channel missing: each fails alone at reading


def test_a_problem_of_one_channel_travels_with_the_case() -> None:
    broken = ScanSource(path=Path("in/a_0001.nii.gz"), kind="nifti", problem="truncated")
    grouped = group_channel_files([_nifti("in/a_0000.nii.gz"), broken], channels=2)
    assert len(grouped) == 1 and grouped[0].problem == "truncated"
