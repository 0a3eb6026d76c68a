"""A tiny study folder for batch tests: good NIfTI scans, a DICOM series with PHI markers, a broken file."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from medseg.io.dicom_export import write_dicom_series
from medseg.types import SourceInfo, Volume

SIZE = 20
# Marker strings written into the DICOM headers; none may appear in any output but seg.dcm.
PHI_MARKERS = {"PatientName": "Zyxwv^Quokka", "PatientID": "PID-8675309-MRK", "AccessionNumber": "ACC-4242-MRK"}
TRAVERSAL_DESCRIPTION = "../../x"


def sphere_image(seed: int, size: int = SIZE) -> np.ndarray:
    """(size,)*3 float32 scan with a bright sphere (the tiny model's foreground)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"))
    centre = rng.uniform(size * 0.4, size * 0.6, size=3)
    inside = np.linalg.norm(grid - centre[:, None, None, None], axis=0) <= size * 0.25
    return (100.0 + 60.0 * inside + rng.normal(0.0, 5.0, inside.shape)).astype(np.float32)


def write_nifti(path: Path, seed: int, affine: np.ndarray | None = None, size: int = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.5, 1.5, 1.5, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(sphere_image(seed, size), affine), path)
    return path


def write_phi_series(folder: Path, seed: int = 7) -> list[Path]:
    """An MR series whose headers hold the PHI markers and a path-traversal SeriesDescription."""
    affine = np.array([[-1.5, 0, 0, 10.0], [0, -1.5, 0, 20.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]])
    volume = Volume(array=np.round(sphere_image(seed))[np.newaxis], affine=affine, channel_names=("MR",),
                    source=SourceInfo(path="", format="memory"))
    files = write_dicom_series(volume, folder, series_description=TRAVERSAL_DESCRIPTION,
                               patient_id=PHI_MARKERS["PatientID"], patient_name=PHI_MARKERS["PatientName"])
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.AccessionNumber = PHI_MARKERS["AccessionNumber"]
        dataset.save_as(path)
    return files


def write_truncated_nifti(path: Path, seed: int = 9) -> Path:
    """A .nii.gz cut to half its bytes (a real damaged file)."""
    write_nifti(path, seed)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_study(root: Path) -> Path:
    """``root/study``: two good NIfTI scans, a DICOM series (with PHI markers) and a truncated scan."""
    study = root / "study"
    write_nifti(study / "subject_a" / "t1.nii.gz", seed=1)
    write_nifti(study / "subject_b" / "t1.nii.gz", seed=2)
    write_phi_series(study / "subject_c" / "series")
    write_truncated_nifti(study / "subject_d" / "broken.nii.gz")
    (study / "notes.txt").write_text("not a scan\n")
    return study


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


DICOM_SERIES = "subject_c/series"  # the study's one DICOM series; the report names it by SeriesInstanceUID only


def by_input(report: dict) -> dict[str, dict]:
    return {DICOM_SERIES if case["input"].startswith("dicom:") else case["input"]: case for case in report["cases"]}


def build_tiny_model(root: Path) -> Path:
    """Train a tiny UNet for one epoch on sphere scans and export its model folder (a few seconds)."""
    from medseg.config import ExperimentConfig, load_config
    from medseg.inference.model_folder import export_model_folder
    from medseg.training.loop import train

    data = root / "tiny-data"
    training = []
    for index in range(4):
        for kind, array in (("images", sphere_image(100 + index)), ("labels", None)):
            folder = data / f"{kind}Tr"
            folder.mkdir(parents=True, exist_ok=True)
            if array is None:
                array = (sphere_image(100 + index) > 130).astype(np.uint8)
            nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.5, 1.5, 1.0])), folder / f"s{index}.nii.gz")
        training.append({"image": f"./imagesTr/s{index}.nii.gz", "label": f"./labelsTr/s{index}.nii.gz"})
    (data / "dataset.json").write_text(json.dumps({
        "name": "tiny", "modality": {"0": "MR"}, "labels": {"0": "background", "1": "sphere"},
        "numTraining": len(training), "numTest": 0, "training": training, "test": []}))
    config = load_config(ExperimentConfig, {
        "seed": 3,
        "data": {"dataset_json": str(data / "dataset.json")},
        "network": {"name": "unet", "channels": [4, 8], "strides": [2], "num_res_units": 0,
                    "patch_size": [16, 16, 16], "window_size": [16, 16, 16]},
        "transforms": {"spacing": [], "augment": {"enabled": False}},
        "sampling": {"samples_per_case": 1},
        "split": {"val_fraction": 0.25, "test_fraction": 0.0, "seed": 1},
        "train": {"max_epochs": 1, "batch_size": 2, "progress": False, "device": "cpu",
                  "optimizer": {"lr": 0.01}, "schedule": {"name": "constant"}},
    })
    run = train(config, root / "tiny-run")
    return export_model_folder(run.run_dir, root / "tiny-model")


def tiny_model_folder(base: Path) -> Path:
    """The tiny model folder under the pytest session's base temp folder, built once per session."""
    model = base / "batch-tiny" / "tiny-model"
    if not model.is_dir():
        (base / "batch-tiny").mkdir(parents=True, exist_ok=True)
        build_tiny_model(base / "batch-tiny")
    return model
