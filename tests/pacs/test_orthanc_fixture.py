"""The Orthanc fixture itself: it starts, takes uploads over REST, requires its password, and stops."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from orthanc_server import OrthancError, OrthancServer

from medseg.io.dicom_export import write_dicom_series


def test_upload_then_read_back(orthanc, make_volume, tmp_path):
    files = write_dicom_series(make_volume(shape=(6, 5, 4)), tmp_path / "series", modality="MR")
    answers = orthanc.upload(files)
    assert len(answers) == 4 and all(answer["Status"] == "Success" for answer in answers)
    study_uid = orthanc.study_uids()
    assert len(study_uid) == 1
    series = orthanc.series_of_study(study_uid[0])
    assert [item["Modality"] for item in series] == ["MR"]
    assert len(series[0]["Instances"]) == 4
    downloaded = orthanc.download_series(series[0], tmp_path / "back")
    assert sorted(path.read_bytes()[128:132] for path in downloaded) == [b"DICM"] * 4


def test_refuses_without_password_and_answers_dicomweb(orthanc):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(orthanc.url + "/system", timeout=10)
    assert caught.value.code == 401
    assert orthanc.get_json("/plugins").count("dicom-web") == 1


def test_stops_at_exit(orthanc_factory):
    server: OrthancServer = orthanc_factory(modalities={"PEER": ("PEER", "127.0.0.1", 1)})
    assert server.get_json("/modalities") == ["PEER"]
    server.stop()
    with pytest.raises((OSError, OrthancError)):
        server.get_json("/system")
