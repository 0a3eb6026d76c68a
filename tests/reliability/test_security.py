"""No patient identifier leaks; tag values never steer paths; pickles and YAML objects are refused.

A series carries unique markers in PatientName, PatientID, PatientBirthDate, AccessionNumber
and InstitutionName; `medseg info` and `medseg predict` (with --debug logging) run on it and
every byte they produce is searched: stdout/stderr/logs, report.json, case.json, completion
records, file and folder names, and the NIfTI headers (descrip, aux_file, extensions: the
whole decompressed file). Only the DICOM-SEG may carry them, and by the standard it must.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import corpus
import numpy as np
import pydicom
import pytest
import torch
import yaml
from batch_helpers import sphere_image, tiny_model_folder
from medseg_cli.main import main
from training_helpers import tiny_config_dict, write_tiny_dataset

from medseg.io.dicom_export import write_dicom_series
from medseg.types import SourceInfo, Volume

MARKERS = {
    "PatientName": "Qxzmarker^Pname",
    "PatientID": "QXZ-PID-31337",
    "PatientBirthDate": "19010203",
    "AccessionNumber": "QXZACC7788",
    "InstitutionName": "Qxz Marker Institute",
}


def _phi_series(folder: Path, patient_id: str = MARKERS["PatientID"], description: str = "T1 axial",
                broken: bool = False) -> list[Path]:
    affine = np.array([[-1.5, 0, 0, 10.0], [0, -1.5, 0, 20.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]])
    volume = Volume(np.round(sphere_image(5))[None], affine, ("MR",), SourceInfo(path="", format="memory"))
    files = write_dicom_series(volume, folder, patient_id=patient_id, patient_name=MARKERS["PatientName"],
                               series_description=description)
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.PatientBirthDate = MARKERS["PatientBirthDate"]
        dataset.AccessionNumber = MARKERS["AccessionNumber"]
        dataset.InstitutionName = MARKERS["InstitutionName"]
        dataset.save_as(path)
    if broken:
        files[len(files) // 2].unlink()
    return files


def _leaks(data: bytes) -> list[str]:
    text = data.decode("latin-1")
    found = [key for key, marker in MARKERS.items() if marker in text]
    found += [f"{key} (as '{marker.split('^')[0]}')" for key, marker in MARKERS.items()
              if "^" in marker and marker.split("^")[0] in text and key not in found]
    return found


def _file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


@pytest.mark.limit(180)
def test_no_identifier_in_anything_info_and_predict_produce(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    study = tmp_path / "study"
    _phi_series(study / "good")
    _phi_series(study / "broken", broken=True)
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        info_status = main(["--debug", "info", str(study)])
        predict_status = main(["--debug", "predict", str(study), "--model", str(model), "--out", str(out),
                               "--uncertainty", "--probabilities", "--no-progress"])
    stdout, stderr = capsys.readouterr()
    assert (info_status, predict_status) == (1, 1)  # the broken series is named, the good one predicted
    assert "missing slice" in stdout
    assert _leaks(stdout.encode()) == [] and _leaks(stderr.encode()) == []
    assert _leaks("\n".join(record.getMessage() for record in caplog.records).encode()) == []

    produced = [path for path in out.rglob("*")]
    seg_files = [path for path in produced if path.name == "seg.dcm"]
    assert len(seg_files) == 1
    searched = 0
    for path in produced:
        assert _leaks(str(path.relative_to(tmp_path)).encode()) == [], path
        if path.is_file() and path.name != "seg.dcm":
            assert _leaks(_file_bytes(path)) == [], path
            searched += 1
    assert searched >= 6  # report.json, case.json x2, complete.json, seg/uncertainty/probabilities .nii.gz
    seg = pydicom.dcmread(seg_files[0])
    assert str(seg.PatientName) == MARKERS["PatientName"] and seg.PatientID == MARKERS["PatientID"]
    assert "PatientBirthDate" in seg and "PatientSex" in seg  # patient module (type 2 attributes) present


@pytest.mark.parametrize("patient_id, description", [("../../x", "/etc"), ("/etc", "../../x"),
                                                     ("..\\..\\y", "a/../../../z")])
def test_tag_values_never_steer_output_paths(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                             patient_id: str, description: str) -> None:
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    inside = tmp_path / "work"
    _phi_series(inside / "study" / "series", patient_id=patient_id, description=description)
    before = {p for p in tmp_path.rglob("*")}
    status = main(["predict", str(inside / "study"), "--model", str(model), "--out", str(inside / "out"),
                   "--no-progress"])
    assert status == 0
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.resolve().is_relative_to((inside / "out").resolve()) for p in created), created
    assert not any(part in {"x", "y", "z", "etc"} for p in created for part in p.relative_to(inside).parts)


# --- pickles and YAML objects -------------------------------------------------------------

class _Payload:
    """Unpickling this runs ``os.system`` (touches a marker file): it must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path, base: dict | None = None) -> Path:
    state = dict(base or {"format": "medseg-checkpoint/1"})
    state["payload"] = _Payload(marker)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config file, run folder) of a one-epoch tiny run."""
    root = tmp_path_factory.mktemp("secure-train")
    dataset = write_tiny_dataset(root / "data", cases=4)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(dataset, **{"train.max_epochs": 1})))
    assert main(["train", "--config", str(config), "--out", str(root / "run")]) == 0
    return config, root / "run"


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    status = main(argv)
    _, err = capsys.readouterr()
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_pickled_checkpoint_is_refused_for_resume(trained_run, tmp_path: Path, capsys) -> None:
    _, run = trained_run
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    marker = tmp_path / "PWNED"
    last = copy / "checkpoints" / "last.pt"
    _evil_checkpoint(last, marker, torch.load(last, weights_only=True))
    _refused(["train", "--resume", str(copy)], capsys, "last.pt", "refused to load", "pickled")
    assert not marker.exists()


def test_pickled_checkpoint_is_refused_for_init_from(trained_run, tmp_path: Path, capsys) -> None:
    config, _ = trained_run
    marker = tmp_path / "PWNED"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    _refused(["train", "--config", str(config), "--out", str(tmp_path / "new"), "--init-from", str(evil)],
             capsys, "evil.pt", "refused to load")
    assert not marker.exists()


def test_pickled_weights_in_a_model_folder_are_refused(tmp_path_factory, tmp_path: Path, capsys) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_folder(tmp_path_factory.getbasetemp()), model)
    marker = tmp_path / "PWNED"
    state = torch.load(model / "weights.pt", weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, model / "weights.pt")
    scan = corpus.nifti(tmp_path / "scan.nii.gz", corpus.grid((20, 20, 20)))
    _refused(["predict", str(scan), "--model", str(model), "--out", str(tmp_path / "out"), "--no-progress"],
             capsys, "weights.pt", "refused to load")
    assert not marker.exists()


YAML_OBJECT = "seed: !!python/object/apply:os.system ['touch {marker}']\n"


def test_yaml_with_python_objects_is_refused(trained_run, tmp_path_factory, tmp_path: Path, capsys) -> None:
    import shutil

    marker = tmp_path / "PWNED"
    config = tmp_path / "evil.yaml"
    config.write_text(YAML_OBJECT.format(marker=marker))
    _refused(["train", "--config", str(config), "--out", str(tmp_path / "run")], capsys, "evil.yaml")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_folder(tmp_path_factory.getbasetemp()), model)
    (model / "model.yaml").write_text(YAML_OBJECT.format(marker=marker) + (model / "model.yaml").read_text())
    scan = corpus.nifti(tmp_path / "scan.nii.gz", corpus.grid((20, 20, 20)))
    _refused(["predict", str(scan), "--model", str(model), "--out", str(tmp_path / "out"), "--no-progress"],
             capsys, "model.yaml")
    assert not marker.exists()


def test_zip_study_archive_is_not_accepted(tmp_path: Path, capsys) -> None:
    archive = corpus.zip_archive(tmp_path)
    status = main(["info", str(archive)])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in out + err
    assert "study.zip" in out + err
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
