"""Issue 17, findings 3, 4, 7 (.mhd) and 9 (junk): hostile files in a study never stop the batch or blow memory.

Real files: a 5000-deep nested sequence, a slice whose InstanceNumber is ``ab``, a Deflated
bomb, an Enhanced MR header claiming 13 G voxels, an .mhd pointing at /etc/passwd, and
thousands of junk files, each beside a valid NIfTI that must still be predicted.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import hostile
import nibabel as nib
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from medseg_cli.main import main

from medseg.errors import InputError
from medseg.inference.batch import run_batch
from medseg.io.discover import discover
from medseg.io.read import read_scan

BOMB_INFLATED = 64 << 20  # 64 MB from a 66 kB file (the review's bomb: 2.1 GB from 0.95 MB)


def _study_with(tmp_path: Path, build) -> Path:
    study = tmp_path / "study"
    write_nifti(study / "good" / "t1.nii.gz", seed=1)
    (study / "bad").mkdir(parents=True)
    build(study / "bad")
    return study


@pytest.mark.parametrize("build, reason", [
    (lambda folder: hostile.deep_sequence_file(folder / "deep.dcm"), "nested too deeply"),
    (lambda folder: hostile.bad_instance_number_series(folder / "series"), "InstanceNumber is not an integer"),
    (lambda folder: hostile.deflate_bomb(folder / "bomb.dcm", BOMB_INFLATED), "Deflated transfer syntax is refused"),
], ids=["deep-sequence", "instance-number-ab", "deflate-bomb"])
def test_one_malformed_dicom_never_stops_info_or_predict(tmp_path_factory, tmp_path: Path, build, reason: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    study = _study_with(tmp_path, build)
    assert main(["info", str(study)]) == 1  # one unreadable scan, no traceback
    printed = capsys.readouterr().out
    assert reason in printed and "OK    nifti" in printed
    out = tmp_path / "out"
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    assert main(["predict", str(study), "--model", str(model), "--out", str(out), "--no-progress"]) == 1
    report = json.loads((out / "report.json").read_text())
    statuses = {case["input"]: case["status"] for case in report["cases"]}
    assert statuses.pop("good/t1.nii.gz") == "ok"  # the valid NIfTI in the same folder is processed
    assert list(statuses.values()) == ["failed"]
    (failed,) = [case for case in report["cases"] if case["status"] == "failed"]
    assert reason in failed["reason"]


def test_a_deflate_bomb_is_refused_before_anything_is_inflated(tmp_path: Path) -> None:
    bomb = hostile.deflate_bomb(tmp_path / "bomb.dcm", BOMB_INFLATED)
    assert bomb.stat().st_size < 100_000
    tracemalloc.start()
    try:
        found = discover(tmp_path)
        with pytest.raises(InputError, match="Deflated transfer syntax is refused"):
            read_scan(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "Deflated" in found.sources[0].problem
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MB while reading a bomb header"


def test_an_enhanced_header_is_checked_against_max_voxels_without_reading_pixels(tmp_path: Path) -> None:
    huge = hostile.huge_enhanced_header(tmp_path / "huge")  # claims 50,000 frames of 512 x 512
    found = discover(huge)
    assert "exceeds the limit" in found.sources[0].problem
    truncated = hostile.truncated_enhanced(tmp_path / "cut")  # whole header, pixel data cut short
    (source,) = [s for s in discover(truncated).sources if s.kind == "dicom-enhanced"]
    assert source.problem == "" and source.shape == (6, 5, 4)  # discovery never touched the pixels
    with pytest.raises(InputError, match="truncated"):
        read_scan(truncated)
    small = discover(truncated, max_voxels=100)
    assert "exceeds the limit of 100" in [s for s in small.sources if s.kind == "dicom-enhanced"][0].problem


def _mhd(folder: Path, data_file: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = folder / "scan.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
                      "ElementSpacing = 1 1 1\nElementDataFile = " + data_file + "\n")
    return header


@pytest.mark.parametrize("data_file, reason", [
    ("/etc/passwd", "absolute path"), ("../secret.raw", "climbs out"), ("link.raw", "outside its folder"),
])
def test_an_mhd_data_file_must_stay_in_its_folder(tmp_path: Path, data_file: str, reason: str) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(range(8)))
    header = _mhd(tmp_path / "scans", data_file)
    (tmp_path / "scans" / "link.raw").symlink_to(secret)
    with pytest.raises(InputError, match=reason):
        read_scan(header)
    assert reason in discover(tmp_path / "scans").sources[0].problem


def test_the_mhd_data_file_is_part_of_the_input_hash(tmp_path_factory, tmp_path: Path) -> None:
    header = _mhd(tmp_path / "study", "voxels.bin")  # a data file named unlike its header
    header.write_text(header.read_text().replace("DimSize = 2 2 2", "DimSize = 20 20 20"))
    (tmp_path / "study" / "voxels.bin").write_bytes(bytes([100]) * 8000)
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    out = tmp_path / "out"
    assert run_batch(tmp_path / "study", model, out, progress=False).count("ok") == 1
    (tmp_path / "study" / "voxels.bin").write_bytes(bytes([160]) * 8000)  # new voxels, same header
    again = run_batch(tmp_path / "study", model, out, progress=False)
    assert [case["status"] for case in again.cases] == ["ok"]  # redone, not "skipped-complete"


@pytest.mark.limit(300)
def test_thousands_of_junk_files_are_cheap_and_summarised(tmp_path_factory, tmp_path: Path) -> None:
    study = tmp_path / "study"
    junk = study / "junk"
    junk.mkdir(parents=True)
    for index in range(20_000):
        (junk / f"f{index:05d}.txt").write_bytes(b"x")
    write_nifti(study / "t1.nii.gz", seed=2)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        found = discover(study)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - started
    assert found.n_skipped == 20_000 and len(found.skipped) <= 50
    assert peak < 40 << 20, f"discovery of 20k junk files peaked at {peak / 2**20:.0f} MB"
    model = tiny_model_folder(tmp_path_factory.getbasetemp())
    run_batch(study, model, tmp_path / "out", progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["ignored_files"] == [{"reason": "not a DICOM file or a known image format", "count": 20_000}]
    assert (tmp_path / "out" / "report.json").stat().st_size < 20_000
    assert seconds < 60


def test_a_nifti_beside_a_dicom_that_crashes_the_parser_in_any_way_is_still_read(tmp_path: Path) -> None:
    """Not only the exceptions pydicom is known to raise: garbage after a valid preamble is the file's problem."""
    study = tmp_path / "study"
    write_nifti(study / "t1.nii.gz", seed=3)
    (study / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    found = discover(study)
    kinds = {source.kind: source for source in found.sources}
    assert kinds["nifti"].problem == "" and kinds["dicom-file"].problem
    assert nib.load(study / "t1.nii.gz").shape == (20, 20, 20)
