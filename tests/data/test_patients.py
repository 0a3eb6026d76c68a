"""A patient with several studies: one `patient` key per case in dataset.json, one side of every split."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from medseg.data.decathlon import Case, read_datalist, write_dataset_json
from medseg.data.splits import assign_cases, make_split
from medseg.errors import InputError

LABELS = ("background", "lesion")


def _nifti(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 3), dtype=np.uint8), np.eye(4)), path)
    return path


def _studies(root: Path, patients: int, studies: int) -> list[dict]:
    entries = []
    for p in range(patients):
        for s in range(studies):
            name = f"p{p:02d}_s{s}"
            entries.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz",
                            "patient": f"P{p:02d}"})
            _nifti(root / "imagesTr" / f"{name}.nii.gz")
            _nifti(root / "labelsTr" / f"{name}.nii.gz")
    return entries


def _write(root: Path, training: list[dict]) -> Path:
    path = root / "dataset.json"
    path.write_text(json.dumps({"name": "longitudinal", "labels": {"0": "background", "1": "lesion"},
                                "modality": {"0": "FLAIR"}, "training": training, "test": []}))
    return path


def test_studies_of_one_patient_never_straddle_a_split(tmp_path: Path) -> None:
    datalist = read_datalist(_write(tmp_path, _studies(tmp_path, patients=10, studies=3)))
    assert len(datalist.training) == 30
    assert len({c.case_id for c in datalist.training}) == 30
    assert len({c.patient_id for c in datalist.training}) == 10
    for seed in range(20):
        split = make_split([c.patient_id for c in datalist.training], 0.2, 0.2, seed)
        parts = assign_cases(datalist.training, split, lambda case: case.patient_id)
        sides = {}
        for part, cases in parts.items():
            for case in cases:
                sides.setdefault(case.patient_id, set()).add(part)
        assert all(len(side) == 1 for side in sides.values())
        assert sorted(len(cases) for cases in parts.values()) == [6, 6, 18]  # whole patients: 2, 2, 6


def test_case_ids_stay_unique_and_patient_defaults_to_the_case(tmp_path: Path) -> None:
    entries = _studies(tmp_path, patients=1, studies=2)
    del entries[1]["patient"]
    datalist = read_datalist(_write(tmp_path, entries))
    assert [(c.case_id, c.patient_id) for c in datalist.training] == [("p00_s0", "P00"), ("p00_s1", "p00_s1")]
    entries[1]["case_id"] = "p00_s0"
    with pytest.raises(InputError, match=r"training\[1\]': case id 'p00_s0' is also used by training\[0\]"):
        read_datalist(_write(tmp_path, entries))
    entries[1]["case_id"] = "visit-2"
    entries[1]["patient"] = ""
    with pytest.raises(InputError, match=r"training\[1\]\.patient': must be a non-empty string"):
        read_datalist(_write(tmp_path, entries))


def test_written_datalists_keep_the_patient(tmp_path: Path) -> None:
    images = [_nifti(tmp_path / "imagesTr" / f"{n}.nii.gz") for n in ("v1", "v2")]
    labels = [_nifti(tmp_path / "labelsTr" / f"{n}.nii.gz") for n in ("v1", "v2")]
    cases = [Case("P7", (images[i],), labels[i], case_id=f"v{i + 1}") for i in range(2)]
    path = write_dataset_json(tmp_path / "dataset.json", name="x", description="", modalities=("T1",),
                              labels=LABELS, training=cases, test=[])
    assert json.loads(path.read_text())["training"][0] == {
        "image": "./imagesTr/v1.nii.gz", "label": "./labelsTr/v1.nii.gz", "case_id": "v1", "patient": "P7"}
    assert [(c.case_id, c.patient_id) for c in read_datalist(path).training] == [("v1", "P7"), ("v2", "P7")]
