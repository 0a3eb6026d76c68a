"""`medseg demo` end to end on a tiny brain sample with a tiny network (about half a minute)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from medseg_cli.main import main

TINY_DEFINITION = {
    "kind": "brain-tissue", "name": "brain-demo-tiny", "description": "tiny brain sample for the demo test",
    "seed": 5, "n_train": 4, "n_test": 1, "template_downsample": 3, "margin_mm": 6.0, "dicom_cases": [],
    "augment": {"spacings": [[3.0, 3.0, 3.0]], "orientations": ["RAS", "LPS"]},
}
TINY_NETWORK = (
    "network.channels=[4, 8]", "network.strides=[2]", "network.num_res_units=0",
    "network.patch_size=[16, 16, 16]", "network.window_size=[32, 32, 32]", "transforms.spacing=[4.0, 4.0, 4.0]",
    "transforms.augment.enabled=false", "sampling.samples_per_case=1", "train.val_every=1",
    "split.val_fraction=0.25",
)


@pytest.mark.slow
def test_demo_writes_the_report_with_model_and_baseline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.set_num_threads(1)
    definition = tmp_path / "tiny.yaml"
    definition.write_text(yaml.safe_dump(TINY_DEFINITION))
    out = tmp_path / "demo-output"
    arguments = ["demo", "--out", str(out), "--data", str(tmp_path / "data"), "--epochs", "1",
                 "--definition", str(definition), "--no-progress"]
    for override in TINY_NETWORK:
        arguments += ["--set", override]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "Dice CSF:" in printed and "baseline 0.000" in printed
    assert f"medseg view {tmp_path / 'data' / 'brain-demo-tiny' / 'imagesTs'} --pred {out / 'predictions'}" in printed

    report = (out / "report.md").read_text()
    for expected in ("| CSF |", "| gray matter |", "| white matter |", "ECE", "evaluation/dice_boxplot.png",
                     "evaluation/overlays.png", "medseg view"):
        assert expected in report
    batch = json.loads((out / "predictions" / "report.json").read_text())
    assert batch["summary"]["ok"] == 1 and batch["summary"]["failed"] == 0
    assert (out / "model" / "calibration.json").is_file()
    rows = (out / "evaluation" / "metrics.csv").read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == {"brain_004"}  # evaluated under the scan's own name

    # a rerun reuses the run (resumed to the same epoch count), the data and the complete predictions
    assert main(arguments) == 0
    batch = json.loads((out / "predictions" / "report.json").read_text())
    assert batch["summary"]["skipped-complete"] == 1
