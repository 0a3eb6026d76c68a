"""The Review dock with a PACS: a case predicted from a study URL, marked Corrected, goes back into that
study as a SEMIAUTOMATIC DICOM-SEG (real Orthanc, headless napari under Xvfb); `medseg view URL`'s study folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
import pytest
import torch

pytest.importorskip("napari")

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "inference"))
from batch_helpers import PHI_MARKERS, tiny_model_folder, write_phi_series  # noqa: E402
from medseg_napari.review_widget import ReviewWidget  # noqa: E402

from medseg.inference.pacs_batch import run_pacs_batch  # noqa: E402
from medseg.pacs.credentials import read_credentials  # noqa: E402
from medseg.pacs.dicomweb import PacsError  # noqa: E402
from medseg.review.corrected_seg import CORRECTED_SEG_NAME  # noqa: E402
from medseg.review.pacs_sender import PacsReviewSender  # noqa: E402
from medseg.review.study_url import open_study_url  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_model_folder(tmp_path_factory.getbasetemp())


def test_corrected_case_is_stored_into_its_study(orthanc, model, make_napari_viewer, tmp_path):
    torch.set_num_threads(1)
    files = write_phi_series(tmp_path / "upload" / "series")
    orthanc.upload(files)
    study_uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    credentials_path = orthanc.write_credentials(tmp_path / "pacs.json")
    credentials = read_credentials(credentials_path)
    url = f"{orthanc.dicomweb_url}/studies/{study_uid}"
    out = tmp_path / "out"
    result = run_pacs_batch([url], model, out, credentials=credentials, progress=False)
    assert result.succeeded and {s["Modality"] for s in orthanc.series_of_study(study_uid)} == {"MR"}

    viewer = make_napari_viewer()
    review = ReviewWidget(viewer)
    review.sender = PacsReviewSender(out, orthanc.dicomweb_url, credentials)
    items = review.open_folder(out)
    assert len(items) == 1 and review.current is not None
    labels = review.segment.result.labels
    labels.data[labels.data == 1] = 0  # the reader erases the model's sphere ...
    labels.data[2:6, 2:6, 2:6] = 1  # ... and paints a box
    labels.refresh()
    record = review.mark_corrected()
    assert record is not None and record.dicom_seg == f"{items[0].case_id}/{CORRECTED_SEG_NAME}"
    assert "and sent" in review.status.text()
    assert review.sender.sent == [(items[0].case_id, study_uid)]

    series = {item["Modality"]: item for item in orthanc.series_of_study(study_uid)}
    assert set(series) == {"MR", "SEG"}
    seg_path, = orthanc.download_series(series["SEG"], tmp_path / "back")
    seg = pydicom.dcmread(seg_path)
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert seg.StudyInstanceUID == study_uid
    assert seg.SOPInstanceUID == pydicom.dcmread(out / items[0].case_id / CORRECTED_SEG_NAME).SOPInstanceUID
    for path in out.rglob("*.json"):
        assert not any(marker in path.read_text() for marker in PHI_MARKERS.values()), path


def test_a_case_not_from_a_pacs_is_not_sent(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"cases": []}))
    sender = PacsReviewSender(tmp_path, "http://127.0.0.1:9/dicom-web")
    with pytest.raises(PacsError, match="did not come from a PACS study"):
        sender(tmp_path / "case_x" / CORRECTED_SEG_NAME)


def test_view_url_opens_the_study_as_a_folder(orthanc, tmp_path):
    files = write_phi_series(tmp_path / "upload" / "series")
    orthanc.upload(files)
    study_uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    credentials = orthanc.write_credentials(tmp_path / "pacs.json")
    url = f"{orthanc.dicomweb_url}/studies/{study_uid}"
    with open_study_url(url, None, credentials) as folder:  # no --pred: a temporary copy
        assert len(list(folder.rglob("*.dcm"))) == len(files)
        kept = folder
    assert not kept.exists()
    with open_study_url(url, tmp_path / "pred", credentials) as folder:  # --pred: kept beside the outputs
        assert folder.parent == tmp_path / "pred" / "studies"
    assert len(list(folder.rglob("*.dcm"))) == len(files)
