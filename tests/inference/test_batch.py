"""Batch prediction over a study folder: good, DICOM and broken cases; reruns; completion records; PHI."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import highdicom
import numpy as np
import pytest
import torch
from batch_helpers import PHI_MARKERS, by_input, make_study, read_report, tiny_model_folder
from medseg_cli.main import main

from medseg.inference.batch import run_batch
from medseg.inference.completion import file_sha256, read_record
from medseg.io.read import read_labels, read_scan

GOOD = ("subject_a/t1.nii.gz", "subject_b/t1.nii.gz", "subject_c/series")
BROKEN = "subject_d/broken.nii.gz"



@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, int]:
    """(study, model, out, exit status) of one `medseg predict` over the study."""
    torch.set_num_threads(1)
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    root = tmp_path_factory.mktemp("batch")
    study = make_study(root)
    out = root / "out"
    status = main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                   "--uncertainty", "--probabilities"])
    return study, model, out, status


def _copy_out(first_run: tuple[Path, Path, Path, int], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(first_run[2], out)
    return out


def _rerun(first_run: tuple[Path, Path, Path, int], out: Path) -> dict[str, dict]:
    study, model, _, _ = first_run
    result = run_batch(study, model, out, uncertainty=True, probabilities=True, progress=False)
    assert not result.succeeded  # the broken case still fails
    return by_input(read_report(out))


def test_good_cases_get_masks_on_their_grid_and_the_broken_one_is_named(first_run) -> None:
    study, _, out, status = first_run
    assert status == 1
    report = read_report(out)
    cases = by_input(report)
    assert sorted(cases) == sorted(GOOD + (BROKEN,))
    assert report["summary"]["ok"] == 3 and report["summary"]["failed"] == 1
    assert report["ignored_files"] == [{"reason": "not a DICOM file or a known image format", "count": 1}]
    for name in GOOD:
        case = cases[name]
        assert case["status"] == "ok"
        assert case["case_id"].startswith("case_") and len(case["case_id"]) == 15
        assert set(case["timings_s"]) >= {"read", "predict", "write"}
        assert "sphere" in case["class_volumes_ml"] and isinstance(case["qc_flags"], list)
        scan = read_scan(study / name)
        seg = read_labels(out / case["case_id"] / "seg.nii.gz", reference=scan)  # raises when off the grid
        np.testing.assert_allclose(seg.affine, scan.affine, atol=1e-5)
        probabilities = read_scan(out / case["case_id"] / "probabilities.nii.gz", modalities=("bg", "sphere"))
        assert probabilities.array.shape == (2,) + scan.spatial_shape
        np.testing.assert_allclose(probabilities.array.sum(axis=0), 1.0, atol=1e-4)
        np.testing.assert_array_equal(seg.array, probabilities.array.argmax(axis=0))
        uncertainty = read_scan(out / case["case_id"] / "uncertainty.nii.gz").array[0]
        assert uncertainty.min() >= 0 and uncertainty.max() <= 1 + 1e-6
        record = read_record(out / case["case_id"])
        assert set(record["outputs"]) == {Path(p).name for p in case["outputs"]} | {"case.json"}
    broken = cases[BROKEN]
    assert broken["status"] == "failed" and broken["stage"] == "read"
    assert "cannot read the voxel data" in broken["reason"] and broken["outputs"] == []
    assert read_record(out / broken["case_id"]) is None  # never looks complete
    assert json.loads((out / broken["case_id"] / "case.json").read_text())["status"] == "failed"


def test_report_md_names_the_failure_and_every_case_as_the_json_does(first_run) -> None:
    study, _, out, _ = first_run
    report = read_report(out)
    page = (out / "report.md").read_text()
    assert page.startswith("# medseg predict: 4 cases: 3 predicted, 0 already complete, 1 failed;")
    broken = by_input(report)[BROKEN]
    assert f"| {broken['case_id']} | {BROKEN} | read | cannot read the voxel data" in page
    for case in report["cases"]:
        assert f"| {case['case_id']} | {case['input']} | {case['status']} |" in page
    # The batch holds DICOM, so neither file names the input folder (its name may be a patient's).
    assert report["input"] is None and str(study) not in page and str(study) not in (out / "report.json").read_text()


def test_a_failed_image_file_is_named_relative_to_the_input(first_run, tmp_path: Path) -> None:
    study, model, _, _ = first_run
    folder = tmp_path / "Doe^Jane" / "visit"
    (folder / "t1.nii.gz").parent.mkdir(parents=True)
    (folder / "t1.nii.gz").write_bytes(b"not gzip")
    result = run_batch(folder, model, tmp_path / "out", progress=False)
    reason = result.cases[0]["reason"]
    assert "t1.nii.gz" in reason and "Doe^Jane" not in reason, reason
    failed_section = (tmp_path / "out" / "report.md").read_text().split("## Failed")[1].split("## ")[0]
    assert "| t1.nii.gz | read |" in failed_section and "Doe^Jane" not in failed_section


def test_dicom_input_gets_a_seg_that_highdicom_reads_and_matches_the_mask(first_run) -> None:
    study, _, out, _ = first_run
    case = by_input(read_report(out))["subject_c/series"]
    assert f"{case['case_id']}/seg.dcm" in case["outputs"]
    scan = read_scan(study / "subject_c/series")
    labels = read_labels(out / case["case_id"] / "seg.nii.gz", reference=scan).array
    seg = highdicom.seg.segread(out / case["case_id"] / "seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == scan.source.dicom["SeriesInstanceUID"]
    uids = list(scan.source.dicom["sop_instance_uids"])
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1])  # (K, Rows, Columns, 1)
    for k in range(scan.spatial_shape[2]):
        np.testing.assert_array_equal(pixels[k, :, :, 0], (labels[:, ::-1, k] == 1).T)


def test_rerun_skips_complete_cases(first_run, tmp_path: Path) -> None:
    out = _copy_out(first_run, tmp_path)
    cases = _rerun(first_run, out)
    assert {name: cases[name]["status"] for name in GOOD} == dict.fromkeys(GOOD, "skipped-complete")
    assert cases[BROKEN]["status"] == "failed"
    assert cases[GOOD[0]]["class_volumes_ml"] == by_input(read_report(first_run[2]))[GOOD[0]]["class_volumes_ml"]


def test_case_without_record_and_damaged_output_are_redone(first_run, tmp_path: Path) -> None:
    out = _copy_out(first_run, tmp_path)
    first = by_input(read_report(first_run[2]))
    (out / first[GOOD[0]]["case_id"] / "complete.json").unlink()  # outputs there, no record
    damaged = out / first[GOOD[1]]["case_id"] / "seg.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:-20])  # record mismatch
    cases = _rerun(first_run, out)
    assert cases[GOOD[0]]["status"] == "ok" and cases[GOOD[1]]["status"] == "ok"
    assert cases[GOOD[2]]["status"] == "skipped-complete"
    record = read_record(damaged.parent)
    assert record["outputs"]["seg.nii.gz"] == file_sha256(damaged)
    read_labels(damaged)


def test_changed_options_or_model_redo_the_case(first_run, tmp_path: Path) -> None:
    study, model, _, _ = first_run
    out = _copy_out(first_run, tmp_path)
    run_batch(study, model, out, uncertainty=False, probabilities=True, progress=False)
    cases = by_input(read_report(out))
    assert {cases[name]["status"] for name in GOOD} == {"ok"}
    assert not (out / cases[GOOD[0]]["case_id"] / "uncertainty.nii.gz").exists()  # stale output removed
    changed_model = tmp_path / "model"
    shutil.copytree(model, changed_model)
    card = changed_model / "model_card.json"
    card.write_text(card.read_text().replace('"description": ""', '"description": "changed"'))
    run_batch(study, changed_model, out, uncertainty=False, probabilities=True, progress=False)
    assert {by_input(read_report(out))[name]["status"] for name in GOOD} == {"ok"}


def test_no_patient_identifier_in_any_output_but_the_dicom_seg(first_run) -> None:
    _, _, out, _ = first_run
    markers = [value.encode() for value in PHI_MARKERS.values()] + [b"Zyxwv", b"Quokka", b"8675309"]
    checked = 0
    for path in out.rglob("*"):
        assert not any(m.decode().lower() in path.name.lower() for m in markers)
        if path.is_dir() or path.name == "seg.dcm":
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        assert not any(marker in data for marker in markers), path
        checked += 1
    assert checked >= 14
    report_text = (out / "report.json").read_text()
    assert "../../x" not in report_text  # SeriesDescription never copied


def test_path_traversal_description_stays_inside_out(first_run) -> None:
    study, _, out, _ = first_run
    root = out.parent
    everything = {p.resolve() for p in root.rglob("*")}
    outside = {p for p in everything if not p.is_relative_to(out.resolve()) and not p.is_relative_to(study.resolve())}
    assert outside == set()
    assert not (root / "x").exists() and not (root.parent / "x").exists()
    assert all(child.name.startswith("case_") or child.name in ("report.json", "report.md") for child in out.iterdir())


def test_single_scan_and_series_folder_inputs(first_run, tmp_path: Path) -> None:
    study, model, _, _ = first_run
    result = run_batch(study / GOOD[0], model, tmp_path / "one", progress=False)
    assert result.succeeded and [c["input"] for c in result.cases] == ["t1.nii.gz"]
    result = run_batch(study / GOOD[2], model, tmp_path / "series", progress=False)
    assert result.succeeded and [c["input"][:6] for c in result.cases] == ["dicom:"]
    assert (tmp_path / "series" / result.cases[0]["case_id"] / "seg.dcm").is_file()


@pytest.mark.slow
def test_two_workers_give_the_same_outputs(first_run, tmp_path: Path) -> None:
    study, model, out, _ = first_run
    result = run_batch(study, model, tmp_path / "out2", uncertainty=True, probabilities=True, workers=2,
                       progress=False)
    assert [c["status"] for c in result.cases].count("ok") == 3
    first = by_input(read_report(out))
    second = by_input(read_report(tmp_path / "out2"))
    assert sorted(first) == sorted(second)
    for name in GOOD:
        assert first[name]["case_id"] == second[name]["case_id"]
        case_id = first[name]["case_id"]
        one = read_labels(out / case_id / "seg.nii.gz").array
        two = read_labels(tmp_path / "out2" / case_id / "seg.nii.gz").array
        np.testing.assert_array_equal(one, two)
        names = ("background", "sphere")
        np.testing.assert_allclose(read_scan(out / case_id / "probabilities.nii.gz", modalities=names).array,
                                   read_scan(tmp_path / "out2" / case_id / "probabilities.nii.gz",
                                             modalities=names).array, atol=1e-5)
    assert second[BROKEN]["status"] == "failed" and second[BROKEN]["stage"] == "read"


def test_predictor_options_from_the_command_line_reach_the_report_and_redo_complete_cases(
    first_run, tmp_path: Path
) -> None:
    study, model, _, _ = first_run
    out = _copy_out(first_run, tmp_path)
    status = main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress", "--uncertainty",
                   "--probabilities", "--window-plan", "whole", "--memory-budget-gb", "2", "--no-refine",
                   "--foreground-opening-mm", "6", "--prior-weight", "0.8", "--stripped-background-odds", "0.5",
                   "--head-background-odds", "1.5"])
    report = read_report(out)
    assert status == 1 and report["options"]["window_plan"] == "whole"
    assert report["options"]["memory_budget_gb"] == 2 and report["options"]["intensity_refinement"] is False
    assert report["options"]["foreground_opening_mm"] == 6 and report["options"]["prior_weight"] == 0.8
    cases = by_input(report)
    assert {cases[name]["status"] for name in GOOD} == {"ok"}  # other settings than the record's: redone
    stripped = cases[GOOD[0]]["skull_stripped"]  # the check ran (odds below 1) and says what it found
    assert set(stripped) == {"skull_stripped", "far_fraction", "odds"} and stripped["odds"] in (0.5, 1.5)
    record = read_record(out / cases[GOOD[0]]["case_id"])
    assert record["options"]["predictor"] == {"intensity_refinement": False, "memory_budget_gb": 2.0,
                                              "window_plan": "whole", "foreground_opening_mm": 6.0,
                                              "prior_weight": 0.8, "stripped_background_odds": 0.5,
                                              "head_background_odds": 1.5}
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                 "--memory-budget-gb", "0"]) == 2
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                 "--foreground-opening-mm", "-1"]) == 2
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                 "--prior-weight", "1.5"]) == 2
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                 "--stripped-background-odds", "0"]) == 2
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress",
                 "--head-background-odds", "0.5"]) == 2
