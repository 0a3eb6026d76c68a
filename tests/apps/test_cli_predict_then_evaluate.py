"""The README's workflow: `medseg predict` then `medseg evaluate --pred` on its output, NIfTI and DICOM alike.

References are named after the input file's stem, or for a DICOM series after its SeriesInstanceUID
(read here from the DICOM files, independently of the report); the case folders stay pseudonymous.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pydicom
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from batch_helpers import PHI_MARKERS, tiny_model_folder, write_nifti, write_phi_series  # noqa: E402
from medseg_cli.main import main  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_model_folder(tmp_path_factory.getbasetemp())


@pytest.fixture
def predicted(model: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """(input folder, predict output, SeriesInstanceUID) of two NIfTI scans and one DICOM series."""
    torch.set_num_threads(1)
    scans = tmp_path / "imagesTs"
    write_nifti(scans / "brain_010.nii.gz", seed=1)
    write_nifti(scans / "site2" / "brain_011_0000.nii.gz", seed=2)
    files = write_phi_series(scans / "Doe^John" / "series")
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    out = tmp_path / "pred"
    assert main(["predict", str(scans), "--model", str(model), "--out", str(out), "--no-progress"]) == 0
    return scans, out, uid


def _references(out: Path, uid: str, folder: Path, names: dict[str, str]) -> Path:
    """``folder/<name>.nii.gz`` = the prediction of the case whose input is ``names[name]`` (so Dice is 1)."""
    report = json.loads((out / "report.json").read_text())
    case_of = {case["input"]: case["case_id"] for case in report["cases"]}
    folder.mkdir()
    for name, source in names.items():
        shutil.copy(out / case_of[source] / "seg.nii.gz", folder / f"{name}.nii.gz")
    return folder


def test_evaluate_pairs_a_predict_output_by_input_name_and_series_uid(
    predicted: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, out, uid = predicted
    assert all(p.name.startswith("case_") for p in out.iterdir() if p.is_dir())  # pseudonymous folders kept
    truth = _references(out, uid, tmp_path / "labelsTs", {
        "brain_010": "brain_010.nii.gz", "brain_011": "site2/brain_011_0000.nii.gz", uid: f"dicom:{uid}"})
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--truth", str(truth)]) == 0
    printed = capsys.readouterr().out
    assert "3 case(s) evaluated" in printed
    assert "| sphere | Dice | 1.000 ± 0.000 |" in printed  # class names from the predict report
    rows = json.loads((out / "evaluation" / "metrics.json").read_text())["cases"]
    assert {row["case_id"] for row in rows} == {"brain_010", "brain_011", uid}
    written = "".join(p.read_text(errors="replace") for p in (out / "evaluation").iterdir() if p.suffix != ".png")
    assert not any(marker in written for marker in (*PHI_MARKERS.values(), "Doe^John"))


def test_unpaired_references_are_listed_in_one_line(predicted: tuple[Path, Path, str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    _, out, uid = predicted
    truth = _references(out, uid, tmp_path / "labelsTs", {"brain_010": "brain_010.nii.gz"})
    shutil.copy(truth / "brain_010.nii.gz", truth / "brain_099.nii.gz")
    shutil.copy(truth / "brain_010.nii.gz", truth / "Doe^John.nii.gz")  # a DICOM reference must use the UID
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medseg evaluate: error: ")
    assert "cannot pair 2 of 3 reference(s)" in err
    assert "brain_099: no input of that name in the report" in err
    assert "Doe^John: no input of that name in the report" in err
    assert "SeriesInstanceUID" in err
