"""`medseg predict` from the command line: exit statuses, printed summary, errors, torchrun sharing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from batch_helpers import tiny_model_folder, write_nifti  # noqa: E402
from medseg_cli.main import build_parser, main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_model_folder(tmp_path_factory.getbasetemp())


def test_parser_offers_the_options() -> None:
    args = build_parser().parse_args(["predict", "in", "--model", "m", "--out", "o", "--uncertainty",
                                      "--probabilities", "--tta", "--workers", "3", "--device", "cuda"])
    assert (args.uncertainty, args.probabilities, args.tta, args.workers, args.device) == (True, True, True, 3, "cuda")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "in", "--model", "m", "--out", "o", "--device", "tpu"])


def test_all_good_exits_0_and_prints_the_summary(model: Path, tmp_path: Path, capsys) -> None:
    write_nifti(tmp_path / "in" / "a.nii.gz", seed=1)
    write_nifti(tmp_path / "in" / "b.nii.gz", seed=2)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "in"), "--model", str(model), "--out", str(out), "--no-progress"]) == 0
    flagged = sum(1 for case in json.loads((out / "report.json").read_text())["cases"] if case["qc_flags"])
    assert (f"2 predicted, 0 already complete, 0 failed, {flagged} flagged for review; report: {out / 'report.json'} "
            "(for people: report.md)") in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "in"), "--model", str(model), "--out", str(out), "--no-progress"]) == 0
    assert "0 predicted, 2 already complete, 0 failed" in capsys.readouterr().out


def test_bad_arguments_exit_2_with_one_clear_line(model: Path, tmp_path: Path, capsys) -> None:
    assert main(["predict", str(tmp_path / "missing"), "--model", str(model), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--model", str(model), "--out", str(tmp_path / "o")]) == 2
    assert "no scan found" in capsys.readouterr().err
    write_nifti(tmp_path / "in" / "a.nii.gz", seed=1)
    assert main(["predict", str(tmp_path / "in"), "--model", str(tmp_path / "nomodel"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "in"), "--model", str(model), "--out", str(tmp_path / "o"),
                 "--workers", "0"]) == 2


def test_out_inside_the_input_is_not_read_as_input(model: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_nifti(study / "a.nii.gz", seed=1)
    for _ in range(2):
        assert main(["predict", str(study), "--model", str(model), "--out", str(study / "out"), "--no-progress"]) == 0
    report = json.loads((study / "out" / "report.json").read_text())
    assert [case["input"] for case in report["cases"]] == ["a.nii.gz"]


@pytest.mark.slow
def test_torchrun_ranks_share_the_cases_and_rank_0_reports(model: Path, tmp_path: Path) -> None:
    for index in range(3):
        write_nifti(tmp_path / "in" / f"s{index}.nii.gz", seed=index)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "medseg",
         "predict",
         str(tmp_path / "in"), "--model", str(model), "--out", str(out), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert [case["input"] for case in report["cases"]] == ["s0.nii.gz", "s1.nii.gz", "s2.nii.gz"]
    assert report["summary"]["ok"] == 3 and report["options"]["world_size"] == 2
    assert not (out / ".ranks").exists()
    shutil.rmtree(out)
