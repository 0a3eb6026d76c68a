"""Issue 17, findings 7 (review, dataset.json) and 8: folder and file names of DICOM never travel,
and values from files never steer where medseg writes.

A PACS export names the study folder after the patient (``QXZDOE_JANE``) and a file after the
patient too; every file medseg writes (report.json, case.json, review_log.json), its logs, its
progress bar and `medseg info`'s output must be free of those names.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import corpus
import numpy as np
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from medseg_cli.main import main

from medseg.data.decathlon import read_datalist
from medseg.errors import InputError
from medseg.io.read import read_scan
from medseg.review.review_log import LOG_NAME, save_review
from medseg.review.worklist import load_worklist

FOLDER_MARK = "QXZDOE_JANE"
FILE_MARK = "QXZSMITH"


def _pacs_export(root: Path) -> Path:
    """root/exports/QXZDOE_JANE/{MR_good, MR_dup} (the second with a duplicated slice) + a researcher's NIfTI."""
    patient = root / "exports" / FOLDER_MARK
    corpus.series(patient / "MR_good")
    files = corpus.series(patient / "MR_dup", seed=3)
    duplicate = files[1].parent / f"{FILE_MARK}_copy.dcm"
    duplicate.write_bytes(files[1].read_bytes())
    (patient / f"{FILE_MARK}_notes.txt").write_text("stray")
    write_nifti(root / "exports" / "research_case_07.nii.gz", seed=4)
    return root / "exports"


def _text_of(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*.json"))


@pytest.mark.limit(180)
def test_dicom_folder_and_file_names_never_travel(tmp_path_factory, tmp_path: Path, capsys,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    study = _pacs_export(tmp_path)
    out = tmp_path / "out"
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    with caplog.at_level(logging.DEBUG):
        assert main(["info", str(study)]) == 1
        assert main(["predict", str(study), "--model", str(model), "--out", str(out)]) == 1  # with the progress bar
    printed = capsys.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    written = _text_of(out)
    for where, text in (("stdout", printed.out), ("stderr/progress", printed.err), ("log", logged),
                        ("report/case json", written)):
        assert FOLDER_MARK not in text and FILE_MARK not in text, where
    report = json.loads((out / "report.json").read_text())
    assert report["input"] is None  # the batch input path is left out when it holds DICOM
    inputs = sorted(case["input"] for case in report["cases"])
    assert inputs[:2] == sorted(i for i in inputs if i.startswith("dicom:1.2."))  # SeriesInstanceUIDs
    assert "research_case_07.nii.gz" in inputs  # researchers' file names may stay
    (failed,) = [case for case in report["cases"] if case["status"] == "failed"]
    assert "duplicate slice position" in failed["reason"] and "<file>" in failed["reason"]
    assert "dicom-series series 1.2." in printed.out


def test_review_of_a_dicom_study_writes_no_folder_names(tmp_path: Path) -> None:
    study = _pacs_export(tmp_path)
    items = [item for item in load_worklist(study) if item.scan and item.scan.name == "MR_good"]
    (item,) = items
    assert FOLDER_MARK not in item.case_id and item.case_id.startswith("case_")
    volume = read_scan(item.scan)
    labels = np.zeros(volume.spatial_shape, np.uint8)
    edited = labels.copy()
    edited[1, 1, 1] = 1
    save_review(case_id=item.case_id, decision="corrected", seconds=3.0, original=labels, edited=edited,
                reference=volume, class_names=("background", "x"), case_dir=item.case_dir, log_path=study / LOG_NAME)
    log = (study / LOG_NAME).read_text()
    assert FOLDER_MARK not in log and FILE_MARK not in log
    assert FOLDER_MARK not in str(item.case_dir.relative_to(study))


def test_a_crafted_case_id_in_report_json_never_decides_where_reviews_go(tmp_path: Path) -> None:
    out = tmp_path / "pred"
    (out / "case_ok").mkdir(parents=True)
    report = {"cases": [{"case_id": "../../escaped", "status": "ok"}, {"case_id": "/tmp/abs", "status": "ok"},
                        {"case_id": "case_ok", "status": "ok", "input": "/etc/passwd"},
                        {"case_id": "case_ok2", "status": "ok", "input": "../../outside.nii.gz"}]}
    (out / "report.json").write_text(json.dumps(report))
    write_nifti(tmp_path / "outside.nii.gz", seed=1)
    items = load_worklist(out)
    assert sorted(item.case_id for item in items) == ["case_ok", "case_ok2"]
    assert all(item.scan is None for item in items)  # absolute and '..' inputs are never opened
    volume = read_scan(tmp_path / "outside.nii.gz")
    labels = np.zeros(volume.spatial_shape, np.uint8)
    edited = labels.copy()
    edited[0, 0, 0] = 1
    from medseg.errors import OutputError

    with pytest.raises(OutputError, match="outside the review folder"):
        save_review(case_id="x", decision="corrected", seconds=1.0, original=labels, edited=edited, reference=volume,
                    class_names=("b", "x"), case_dir=out / ".." / ".." / "escaped", log_path=out / LOG_NAME)
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("entry, reason", [
    ("/etc/hosts", "absolute path"), ("../outside.nii.gz", "climbs out"), ("./link.nii.gz", "outside its folder"),
])
def test_dataset_json_entries_stay_under_the_dataset_root(tmp_path: Path, entry: str, reason: str) -> None:
    root = tmp_path / "data"
    write_nifti(root / "imagesTr" / "a.nii.gz", seed=1)
    write_nifti(tmp_path / "outside.nii.gz", seed=2)
    (root / "link.nii.gz").symlink_to(tmp_path / "outside.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "labels": {"0": "background", "1": "x"}, "training": [{"image": entry, "label": "./imagesTr/a.nii.gz"}]}))
    with pytest.raises(InputError, match=reason):
        read_datalist(root / "dataset.json")


def test_library_exception_texts_are_reduced_to_type_and_tag() -> None:
    from medseg.io.redact import library_error

    error = ValueError("Invalid value for (0010,0010) Patient's Name: 'QXZDOE^JANE' is too long")
    assert library_error(error) == "ValueError at (0010,0010) PatientName"
    assert library_error(TypeError("PatientID 'QXZ-123' must be str")) == "TypeError at PatientID"
    assert library_error(KeyError("QXZDOE")) == "KeyError"
