"""build_sample: same definition, same bytes; idempotent on a complete folder; partial folders rebuilt."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from sample_helpers import TINY_BRAIN, TINY_CT, canonical, write_definition

from medseg.data.build import BUILD_RECORD, build_sample, definition_hash
from medseg.data.sample_config import load_sample_definition
from medseg.errors import ConfigError, OutputError

REPO = Path(__file__).resolve().parents[2]


def _digests(folder: Path, pattern: str = "*.nii.gz") -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob(pattern)) if p.is_file()}


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(brain_dataset: Path, tmp_path: Path) -> None:
    first = brain_dataset.parent
    no_dicom = {**TINY_BRAIN, "dicom_cases": []}
    second = build_sample(write_definition(tmp_path, no_dicom), tmp_path / "again").parent
    digests = _digests(first)
    assert len(digests) == 6  # 3 cases x (image, label)
    assert _digests(second) == digests
    assert (first / "imagesTr" / "brain_000.nii.gz").read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    other = build_sample(write_definition(tmp_path, {**no_dicom, "seed": 8}, "other.yaml"), tmp_path / "other")
    other_digests = _digests(other.parent)
    assert sorted(other_digests) == sorted(digests)
    assert all(other_digests[name] != digests[name] for name in digests)


def test_build_record_describes_the_build(brain_dataset: Path, brain_definition: Path) -> None:
    record = json.loads((brain_dataset.parent / BUILD_RECORD).read_text())
    assert record["definition_sha256"] == definition_hash(load_sample_definition(brain_definition))
    assert record["definition"]["seed"] == TINY_BRAIN["seed"]
    names = set(record["files"])
    assert {"dataset.json", "imagesTr/brain_001.nii.gz", "labelsTs/brain_002.nii.gz"} <= names
    assert any(n.startswith("dicom/brain_000/") and n.endswith(".dcm") for n in names)
    for name, digest in record["files"].items():
        assert hashlib.sha256((brain_dataset.parent / name).read_bytes()).hexdigest() == digest
    content = json.loads(brain_dataset.read_text())
    assert content["dicom"] == {"brain_000": "./dicom/brain_000"}
    assert content["numTraining"] == 2 and content["numTest"] == 1


def test_complete_folder_is_a_no_op_and_partial_folders_are_rebuilt(tmp_path: Path) -> None:
    definition = write_definition(tmp_path, {**TINY_CT, "dicom_cases": []})
    out = tmp_path / "ct"
    dataset_json = build_sample(definition, out)
    digests, mtimes = _digests(out, "*"), _mtimes(out)

    assert build_sample(definition, out) == dataset_json
    assert _mtimes(out) == mtimes  # nothing rewritten

    label = out / "labelsTr" / "ct_001.nii.gz"
    label.write_bytes(label.read_bytes()[:100])  # a damaged file: the folder is partial
    build_sample(definition, out)
    assert _digests(out, "*") == digests

    (out / "imagesTs" / "ct_002.nii.gz").unlink()
    (out / BUILD_RECORD).unlink()  # an interrupted build
    build_sample(definition, out)
    assert _digests(out, "*") == digests

    smaller = write_definition(tmp_path, {**TINY_CT, "dicom_cases": [], "n_test": 0}, "smaller.yaml")
    build_sample(smaller, out)
    assert not (out / "imagesTs").exists() and not (out / "labelsTs").exists()  # stale files removed
    assert json.loads(dataset_json.read_text())["numTest"] == 0


def test_dicom_folder_with_foreign_files_is_not_overwritten(tmp_path: Path) -> None:
    definition = write_definition(tmp_path, {**TINY_CT, "n_train": 1, "n_test": 0})
    foreign = tmp_path / "out" / "dicom" / "ct_000" / "notes.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("mine")
    with pytest.raises(OutputError, match="not DICOM slices"):
        build_sample(definition, tmp_path / "out")
    assert foreign.read_text() == "mine"


def test_ct_dicom_copy_keeps_hounsfield_units(ct_dataset: Path) -> None:
    import numpy as np

    from medseg.io.read import read_scan

    dicom = read_scan(ct_dataset.parent / "dicom" / "ct_000")
    nifti = read_scan(ct_dataset.parent / "imagesTr" / "ct_000.nii.gz")
    assert dicom.source.modality == "CT"
    dicom_array, dicom_affine = canonical(dicom.array[0], dicom.affine)
    nifti_array, nifti_affine = canonical(nifti.array[0], nifti.affine)
    np.testing.assert_allclose(dicom_affine, nifti_affine, atol=1e-3)
    np.testing.assert_array_equal(dicom_array, nifti_array)
    assert dicom_array.min() < -900 and dicom_array.max() > 250  # air and bone, in HU


def test_script_builds_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("build_sample_script", REPO / "datasets" / "build_sample.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    definition = write_definition(tmp_path, {**TINY_CT, "n_train": 1, "n_test": 0, "dicom_cases": []})
    assert script.main([str(definition), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "dataset.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"kind": "ct-phantom", "colour": "red"}))
    assert script.main([str(bad), str(tmp_path / "bad")]) == 1
    assert "unknown key 'colour'" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        build_sample(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # the definition is checked before anything is written
