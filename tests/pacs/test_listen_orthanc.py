"""Orthanc pushes studies to the storage node and gets their SEGs back (no mocks: Debian's Orthanc).

Orthanc (``tests/pacs/orthanc_server.py``) knows the node as DICOM modality ``MEDSEG``; studies are
uploaded to Orthanc through its REST API, and Orthanc's own ``POST /modalities/MEDSEG/store``
C-STOREs them to the node, which segments each series and sends the SEG back: by C-STORE to
Orthanc's DICOM port, or by STOW-RS to its DICOMweb root (with a credentials file). The SEG must
appear as a new series of the same study in Orthanc, referencing the source series. The time
from Orthanc's store request to the SEG present in Orthanc is printed per study.
"""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from node_helpers import phi_in_files, phi_series, tiny_model_folder, wait_for

from medseg.pacs.node import NodeSettings, StorageNode

STUDIES = 2


def _seg_series(orthanc, study_uid: str) -> list[dict]:
    return [series for series in orthanc.series_of_study(study_uid) if series.get("Modality") == "SEG"]


@pytest.mark.slow
@pytest.mark.parametrize("way", ["c-store", "stow-rs"])
def test_orthanc_pushes_studies_and_gets_their_segs_back(way, orthanc_factory, tmp_path_factory, tmp_path):
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    orthanc = orthanc_factory()
    if way == "c-store":
        target, credentials = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", None
    else:
        target, credentials = orthanc.dicomweb_url, orthanc.write_credentials(tmp_path / "pacs.json")
    settings = NodeSettings(out_dir=tmp_path / "node", model_dir=model, send_to=target, credentials=credentials,
                            port=0, allow_ae=(orthanc.aet,), quiet_seconds=1.0, backoff_s=0.5, poll_s=0.05)
    studies = []
    for index in range(STUDIES):
        files = phi_series(tmp_path / f"study{index}", seed=10 + index)
        orthanc.upload(files)
        studies.append(pydicom.dcmread(files[0]))
    timings = []
    with StorageNode(settings) as node:
        orthanc.add_modality("MEDSEG", "MEDSEG", "127.0.0.1", node.port)
        for source in studies:
            started = time.monotonic()
            orthanc.store_to_modality("MEDSEG", orthanc.study_id(source.StudyInstanceUID))
            wait_for(lambda: _seg_series(orthanc, source.StudyInstanceUID), 600, "the SEG in Orthanc", poll_s=0.2)
            timings.append(time.monotonic() - started)
        time.sleep(1.0)
        counts = node.queue.counts()
    assert counts["sent"] == STUDIES and counts["failed"] == 0
    for source in studies:
        (seg_series,) = _seg_series(orthanc, source.StudyInstanceUID)
        assert len(seg_series["Instances"]) == 1, "one SEG instance per series, sent once"
        seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.instance_file(seg_series["Instances"][0])))
        assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
        assert seg.PatientID == source.PatientID, "the SEG belongs to the same patient in the PACS"
    assert phi_in_files(settings.out_dir) == []
    print(f"{way}: Orthanc store request -> SEG in Orthanc, per study: "
          + ", ".join(f"{seconds:.1f} s" for seconds in timings))
