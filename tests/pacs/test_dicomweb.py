"""medseg.pacs.dicomweb against a real Orthanc: URL parsing, credentials, WADO-RS retrieval, STOW-RS storage, errors."""

from __future__ import annotations

import json
import os

import pydicom
import pytest
from orthanc_server import PASSWORD, USERNAME

from medseg.errors import ConfigError
from medseg.io.dicom_export import write_dicom_series
from medseg.pacs.credentials import Credentials, read_credentials
from medseg.pacs.dicomweb import PacsError, StudyURL, make_session, parse_study_url, retrieve_study, store_files
from medseg.pacs.senders import build_sender


def test_parse_study_url():
    study = parse_study_url("http://127.0.0.1:8042/pacs/dicom-web/studies/1.2.840.1234.5/")
    assert (study.root, study.study_uid) == ("http://127.0.0.1:8042/pacs/dicom-web", "1.2.840.1234.5")
    for bad in ("ftp://h/studies/1.2", "http://h/dicom-web", "http://h/studies/1.2/series/3.4",
                "http://h/studies/1.2?x=1", "http://h/studies/PATIENT"):
        with pytest.raises(PacsError):
            parse_study_url(bad)
    with pytest.raises(PacsError) as caught:
        parse_study_url("http://user:s3cret@h/dicom-web/studies/1.2")
    assert "s3cret" not in str(caught.value) and "--credentials" in str(caught.value)


def test_credentials_file_rules(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("username: u\npassword: s3cret\n")
    good.chmod(0o600)
    credentials = read_credentials(good)
    assert (credentials.username, credentials.password) == ("u", "s3cret")
    assert "s3cret" not in repr(credentials)
    good.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_credentials(good)
    for text, reason in (("username: u\n", "both"), ("token: t\nusername: u\npassword: p\n", "not both"),
                         ("user: u\npassword: s3cret\n", "unknown key"), ("password: [s3cret\n", "not valid")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        bad.chmod(0o600)
        with pytest.raises(ConfigError, match=reason) as caught:
            read_credentials(bad)
        assert "s3cret" not in str(caught.value)


def _study(orthanc, make_volume, tmp_path, name="series"):
    files = write_dicom_series(make_volume(shape=(6, 5, 4)), tmp_path / name, modality="MR",
                               patient_name="Doe^Jane", patient_id="PID-4711")
    orthanc.upload(files)
    return files, str(pydicom.dcmread(files[0]).StudyInstanceUID)


def test_retrieve_then_store_back(orthanc, make_volume, tmp_path):
    files, study_uid = _study(orthanc, make_volume, tmp_path)
    session = make_session(Credentials(USERNAME, PASSWORD))
    study = StudyURL(orthanc.dicomweb_url, study_uid)
    folder = tmp_path / "out" / "studies" / "study_x"
    retrieved = retrieve_study(study, folder, session)
    assert (retrieved.instances, len(retrieved.series_uids), retrieved.reused) == (4, 1, False)
    got = sorted(folder.rglob("*.dcm"))
    assert len(got) == 4
    sent = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in files}
    assert {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in got} == sent
    # No patient identifier in a path. (Not the bare "4711": file names are SOP Instance UIDs and hex digests,
    # which hold any four digits now and then; "PID" and "Doe" cannot occur in either.)
    names = [str(path.relative_to(tmp_path)) for path in got]
    assert not [name for name in names if "Doe" in name or "Jane" in name or "PID" in name], names
    record = json.loads((folder / "retrieved.json").read_text())
    assert record["study_uid"] == study_uid and "Doe" not in json.dumps(record)
    assert retrieve_study(study, folder, session).reused

    # a second series of the same study goes back by STOW-RS
    extra = write_dicom_series(make_volume(shape=(6, 5, 3), seed=1), tmp_path / "extra", study_uid=study_uid,
                               patient_name="Doe^Jane", patient_id="PID-4711")
    assert store_files(extra, orthanc.dicomweb_url, study_uid, session) == 3
    assert len(orthanc.series_of_study(study_uid)) == 2
    assert build_sender(orthanc.dicomweb_url + "/", Credentials(USERNAME, PASSWORD)).send(extra, study_uid) == 3


def test_clear_errors_naming_url_not_credentials(orthanc, make_volume, tmp_path):
    _, study_uid = _study(orthanc, make_volume, tmp_path)
    wrong = make_session(Credentials(USERNAME, "wrong-s3cret"))
    folder = tmp_path / "study"
    with pytest.raises(PacsError, match="HTTP 401") as caught:
        retrieve_study(StudyURL(orthanc.dicomweb_url, study_uid), folder, wrong)
    assert orthanc.dicomweb_url in str(caught.value) and "s3cret" not in str(caught.value)
    assert not folder.exists() and not list(tmp_path.glob(".study*"))
    good = make_session(Credentials(USERNAME, PASSWORD))
    with pytest.raises(PacsError, match="HTTP 404"):
        retrieve_study(StudyURL(orthanc.dicomweb_url, "1.2.3.999"), folder, good)
    closed = f"http://127.0.0.1:{orthanc.dicom_port}/dicom-web"  # the DICOM port speaks no HTTP
    orthanc.stop()
    with pytest.raises(PacsError, match="cannot connect|not valid|no answer"):
        retrieve_study(StudyURL(closed.replace(str(orthanc.dicom_port), str(orthanc.http_port)), study_uid),
                       folder, good, timeout_s=5)
    with pytest.raises(PacsError, match="another study"):
        store_files([next(tmp_path.glob("series/*.dcm"))], orthanc.dicomweb_url, "1.2.3", good)
    assert not os.path.exists(folder)
