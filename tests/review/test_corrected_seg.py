"""A corrected DICOM case: DICOM-SEG marked SEMIAUTOMATIC from the model, valid by dciodvfy; no names travel."""

from __future__ import annotations

import json

import highdicom
import numpy as np
import pydicom
import pytest
from dicom_validation import dciodvfy_errors

from medseg.io import read_scan
from medseg.io.dicom_export import write_dicom_series
from medseg.review.corrected_seg import CORRECTED_SEG_NAME
from medseg.review.review_log import LOG_NAME, save_review
from medseg.review.worklist import load_worklist, worklist_label
from medseg.types import Volume

CLASSES = ("background", "ball", "block")


def _series(root, name="Doe^Jane_head", description="T1 MPRAGE"):
    array = np.arange(8 * 9 * 6, dtype=np.float32).reshape(1, 8, 9, 6) % 50
    folder = root / name / "series_3"
    write_dicom_series(Volume(array=array, affine=np.diag([1.0, 1.0, 2.0, 1.0])), folder,
                       modality="CT", series_description=description)
    return folder


def test_corrected_dicom_case_writes_a_valid_semiautomatic_seg(tmp_path):
    folder = _series(tmp_path / "study")
    volume = read_scan(folder)
    original = np.zeros(volume.spatial_shape, np.uint8)
    original[2:5, 2:5, 1:4] = 1
    edited = original.copy()
    edited[0:2, 0:2, 0:2] = 2
    out = tmp_path / "pred"
    record = save_review(case_id="case_0123456789", decision="corrected", seconds=4.2, original=original,
                         edited=edited, reference=volume, class_names=CLASSES, case_dir=out / "case_0123456789",
                         log_path=out / LOG_NAME, edits=3, model_name="brain-tissue-unet")
    seg_path = out / "case_0123456789" / CORRECTED_SEG_NAME
    assert record.dicom_seg == f"case_0123456789/{CORRECTED_SEG_NAME}" and record.edits == 3
    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG" and seg.SeriesDescription == "medseg corrected"
    assert seg.ContentDescription == "manually corrected from brain-tissue-unet"
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "brain-tissue-unet"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.source.dicom["SeriesInstanceUID"]
    back = highdicom.seg.segread(seg_path)
    assert back.number_of_segments == 2
    errors = dciodvfy_errors(seg_path)
    assert errors in ([], None), errors  # None: dciodvfy not installed; highdicom read it back above
    log_text = (out / LOG_NAME).read_text()
    assert "Doe" not in log_text and "series_3" not in log_text and "T1 MPRAGE" not in log_text
    assert json.loads(log_text)["reviews"][0]["dicom_seg"] == record.dicom_seg


def test_accepted_dicom_case_writes_no_seg(tmp_path):
    volume = read_scan(_series(tmp_path / "study"))
    labels = np.zeros(volume.spatial_shape, np.uint8)
    out = tmp_path / "pred"
    out.mkdir()
    record = save_review(case_id="c", decision="accepted", seconds=1, original=labels, edited=labels,
                         reference=volume, class_names=CLASSES, case_dir=out / "c", log_path=out / LOG_NAME)
    assert record.dicom_seg is None and not (out / "c").exists()


def test_worklist_names_dicom_cases_from_the_study_folder_only_in_memory(tmp_path):
    from medseg.inference.case_ids import case_id, relative_input

    study = tmp_path / "study"
    folder = _series(study)
    uid = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    identifier = case_id(relative_input(folder, study), uid)
    out = tmp_path / "pred"
    (out / identifier).mkdir(parents=True)
    report = {"input": None, "model": {"path": "models/brain-tissue-unet", "class_names": list(CLASSES)},
              "cases": [{"case_id": identifier, "input": f"dicom:{uid}", "modality": "CT", "status": "ok",
                         "qc_flags": ["empty prediction"], "mean_uncertainty": 0.25},
                        {"case_id": "case_aaaaaaaaaa", "input": "nifti/brain_010.nii.gz", "status": "ok"}]}
    (out / "report.json").write_text(json.dumps(report))
    items = {item.case_id: item for item in load_worklist(out, scan_root=study)}
    dicom = items[identifier]
    assert dicom.display_name == "Doe^Jane_head/series_3" and dicom.series_description == "T1 MPRAGE"
    assert dicom.modality == "CT" and dicom.model_name == "brain-tissue-unet" and dicom.scan == folder
    assert worklist_label(dicom) == "Doe^Jane_head/series_3 \u2014 T1 MPRAGE  1 flag(s)  u=0.25"
    assert items["case_aaaaaaaaaa"].display_name == "nifti/brain_010.nii.gz"
    # Without the study folder the DICOM case shows its UID only.
    (tmp_path / "elsewhere").mkdir()
    alone = {i.case_id: i for i in load_worklist(out, scan_root=tmp_path / "elsewhere")}[identifier]
    assert alone.display_name == f"dicom:{uid}" and alone.series_description == "" and alone.scan is None


@pytest.mark.parametrize("bad", ["MANUAL", "automatic"])
def test_unknown_algorithm_type_is_refused(tmp_path, bad):
    from medseg.errors import InputError
    from medseg.io.dicomseg import write_dicom_seg

    volume = read_scan(_series(tmp_path / "study"))
    with pytest.raises(InputError, match="segment algorithm type"):
        write_dicom_seg(np.zeros(volume.spatial_shape, np.uint8), tmp_path / "x.dcm", volume, CLASSES,
                        algorithm_type=bad)
