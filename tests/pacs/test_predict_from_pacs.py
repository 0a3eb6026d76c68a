"""`medseg predict URL --send-to ROOT --rtstruct` against a real Orthanc: the study is pulled by URL,
predicted, and a DICOM-SEG (valid by dciodvfy) and an RTSTRUCT (rasterising back to the mask) are stored
into it; no patient identifier appears outside DICOM objects; one failing study never stops the others."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

TESTS = Path(__file__).resolve().parents[1]
for folder in ("inference", "review", "io"):
    sys.path.insert(0, str(TESTS / folder))
from batch_helpers import PHI_MARKERS, tiny_model_folder, write_phi_series  # noqa: E402
from dicom_validation import dciodvfy_errors  # noqa: E402
from medseg_cli.main import main  # noqa: E402
from orthanc_server import free_port  # noqa: E402
from test_rtstruct import dice, rasterise  # noqa: E402

from medseg.io import read_scan  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_model_folder(tmp_path_factory.getbasetemp())


def _upload_study(orthanc, folder: Path, seed: int = 7) -> tuple[str, list[Path]]:
    files = write_phi_series(folder, seed=seed)
    orthanc.upload(files)
    return str(pydicom.dcmread(files[0]).StudyInstanceUID), files


def _assert_no_phi_outside_dicom(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        for marker in PHI_MARKERS.values():
            assert marker not in str(path.relative_to(out)), path
            if path.is_file() and path.suffix != ".dcm":
                assert marker.encode() not in path.read_bytes(), (marker, path)
    for text in texts:
        assert not any(marker in text for marker in PHI_MARKERS.values())


def test_pull_predict_and_store_back(orthanc, model, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    torch.set_num_threads(1)
    study_uid, _ = _upload_study(orthanc, tmp_path / "upload" / "series")
    credentials = orthanc.write_credentials(tmp_path / "pacs.json")
    out = tmp_path / "out"
    url = f"{orthanc.dicomweb_url}/studies/{study_uid}"

    start = time.perf_counter()
    status = main(["predict", url, "--model", str(model), "--out", str(out), "--send-to", orthanc.dicomweb_url,
                   "--credentials", str(credentials), "--rtstruct", "--no-progress"])
    seconds = time.perf_counter() - start
    printed = capsys.readouterr()
    assert status == 0, printed
    print(f"\nround trip, one study (retrieve + predict + SEG and RTSTRUCT stored): {seconds:.2f} s")

    series = {item["Modality"]: item for item in orthanc.series_of_study(study_uid)}
    assert set(series) == {"MR", "SEG", "RTSTRUCT"}
    seg_path, = orthanc.download_series(series["SEG"], tmp_path / "back" / "seg")
    errors = dciodvfy_errors(seg_path)
    assert errors is not None, "dciodvfy (dicom3tools) is missing: run make setup"
    assert errors == [], errors
    assert pydicom.dcmread(seg_path).StudyInstanceUID == study_uid

    report = json.loads((out / "report.json").read_text())
    case, = report["cases"]
    study, = report["pacs"]["studies"]
    assert (case["status"], study["status"], study["url"], study["sent_instances"]) == ("ok", "ok", url, 2)
    assert report["pacs"]["cases"] == {case["case_id"]: study_uid}
    assert study["round_trip_s"] > 0 and study["folder"].startswith("studies/study_")
    assert "rtstruct.dcm" in " ".join(case["outputs"])
    page = (out / "report.md").read_text()  # the page for people carries the PACS section too
    assert f"| {study_uid} | ok | 1 | 2 |" in page and f"| {case['case_id']} | {case['input']} | ok |" in page

    # the stored RTSTRUCT, read back from the PACS, rasterises to the predicted mask
    rt_path, = orthanc.download_series(series["RTSTRUCT"], tmp_path / "back" / "rt")
    reference = read_scan(next((out / study["folder"]).glob("series_*")))
    labels = np.asarray(nib.load(out / case["case_id"] / "seg.nii.gz").dataobj)
    masks = rasterise(rt_path, reference)
    assert (labels == 1).sum() > 50, "the tiny model predicted (almost) nothing: nothing to compare"
    assert dice(masks["sphere"], labels == 1) >= 0.95

    _assert_no_phi_outside_dicom(out, printed.out, printed.err, caplog.text)
    assert "orthanc-test-secret" not in printed.out + printed.err + caplog.text + (out / "report.json").read_text()


def test_one_failing_study_never_stops_the_others(orthanc, model, tmp_path, capsys):
    torch.set_num_threads(1)
    study_uid, _ = _upload_study(orthanc, tmp_path / "upload" / "series")
    credentials = orthanc.write_credentials(tmp_path / "pacs.json")
    out = tmp_path / "out"
    good = f"{orthanc.dicomweb_url}/studies/{study_uid}"
    missing = f"{orthanc.dicomweb_url}/studies/1.2.3.4.5.6"
    closed = f"http://127.0.0.1:{free_port()}/dicom-web/studies/1.2.3"  # nothing listens there
    status = main(["predict", missing, good, closed, "--model", str(model), "--out", str(out),
                   "--credentials", str(credentials), "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 1
    studies = json.loads((out / "report.json").read_text())["pacs"]["studies"]
    assert [s["status"] for s in studies] == ["failed", "ok", "failed"]
    assert "HTTP 404" in studies[0]["reason"] and f"FAILED study {missing} at retrieve: HTTP 404" in printed
    assert studies[2]["stage"] == "retrieve" and closed in printed
    assert len(studies[1]["case_ids"]) == 1

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("username: medseg\npassword: wrong-s3cret\n")
    wrong.chmod(0o600)
    assert main(["predict", good, "--model", str(model), "--out", str(tmp_path / "out2"),
                 "--credentials", str(wrong), "--no-progress"]) == 1
    printed = capsys.readouterr()
    assert f"FAILED study {good} at retrieve: HTTP 401" in printed.out
    assert "s3cret" not in printed.out + printed.err
    wrong.chmod(0o644)
    assert main(["predict", good, "--model", str(model), "--out", str(tmp_path / "out3"),
                 "--credentials", str(wrong)]) == 2
    assert "chmod 600" in capsys.readouterr().err
