"""`medseg tune` on the tiny sphere data set: every output, the pruner wired, the test split never opened."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from medseg_cli.main import main

from medseg.config import load_experiment
from medseg.data.splits import load_split
from medseg.research.tune import default_storage, tune

_OPENED: list[str] = []
_WATCHING = [False]


def _audit(event: str, args: tuple) -> None:
    if _WATCHING[0] and event == "open" and isinstance(args[0], (str, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while _WATCHING


def _space(tmp_path: Path, **extra: object) -> Path:
    content = {"lr": [1e-3, 3e-2], "base_batch_size": 2, "batch_size": [1, 2], "patch_size": [16],
               "loss": ["dice_ce", "dice"], "width": [1.0, 2.0], "dropout": [0.0, 0.2], "random_trials": 2,
               "pruner": {"startup_trials": 5}, **extra}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_two_trials_write_every_output_and_never_open_the_test_split(
    tiny_config_file: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "search"
    lines: list[str] = []
    _OPENED.clear()
    _WATCHING[0] = True
    try:
        result = tune(tiny_config_file, _space(tmp_path), 2, out, report=lines.append)
    finally:
        _WATCHING[0] = False
    assert len(result.rows) == 2 and [r["state"] for r in result.rows] == ["COMPLETE", "COMPLETE"]
    assert len(lines) == 2 and lines[0].startswith("trial 0 COMPLETE: val Dice ")
    # The test patient's files were never opened; the training and validation ones were.
    split = load_split(out / "trials" / "0" / "split.json")
    assert len(split.test) == 1 and len(split.val) == 1
    root = tiny_dataset.parent
    test_files = {str(root / part / f"{split.test[0]}.nii.gz") for part in ("imagesTr", "labelsTr")}
    opened = {str(Path(p).resolve()) for p in _OPENED if p.endswith(".nii.gz")}
    assert opened and not opened & test_files
    assert str(root / "imagesTr" / f"{split.val[0]}.nii.gz") in opened
    assert load_split(out / "trials" / "1" / "split.json") == split  # every trial uses the same split

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["trial"] for row in rows] == ["0", "1"]
    for row in rows:
        assert 0.0 <= float(row["val_dice"]) <= 1.0 and row["epochs"] == "2" and row["stop_reason"] == "max_epochs"
        # Linear scaling rule: the rate used is lr * batch / 2.
        assert float(row["lr_scaled"]) == pytest.approx(float(row["lr"]) * int(row["batch_size"]) / 2)
    markdown = (out / "results.md").read_text()
    assert "| trial | state | val_dice |" in markdown and "linear scaling" in markdown
    assert (out / "dice_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = max(rows, key=lambda r: float(r["val_dice"]))
    assert result.best is not None and result.best["trial"] == int(best["trial"])
    config = load_experiment(out / "best.yaml")
    assert config.network.channels == tuple(int(4 * float(best["width"])) * m for m in (1, 2))
    assert config.loss.name == best["loss"] and config.train.batch_size == int(best["batch_size"])
    assert config.train.optimizer.lr == pytest.approx(float(best["lr_scaled"]))
    assert config.train.max_epochs == 2 and config.data.dataset_json == str(tiny_dataset)

    record = json.loads((out / "search.json").read_text())
    assert record["format"] == "medseg-search/1" and record["trials"] == {"COMPLETE": 2}
    assert record["best"]["trial"] == result.best["trial"] and record["split"]["test_used"] is False
    assert record["study"]["storage"] == default_storage(out) and (out / "study.db").is_file()
    # Per-epoch validation Dice reached Optuna (what the pruner compares).
    study = optuna.load_study(study_name="medseg-tune", storage=default_storage(out))
    assert [sorted(t.intermediate_values) for t in study.trials] == [[1, 2], [1, 2]]

    # A rerun (here through the CLI) with the same total runs nothing new and rewrites the same results.
    assert main(["tune", "--config", str(tiny_config_file), "--space", str(_space(tmp_path)), "--trials", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 trials (2 complete)" in printed and f"best: trial {result.best['trial']}" in printed
    assert len(list((out / "trials").iterdir())) == 2

    # A model exported from the best trial's run records the search in its card.
    model = tmp_path / "model"
    assert main(["export-model", str(out / "trials" / str(result.best["trial"])), "--out", str(model),
                 "--search", str(out / "search.json")]) == 0
    search = json.loads((model / "model_card.json").read_text())["training"]["search"]
    assert search["best"]["trial"] == result.best["trial"] and search["trials"] == {"COMPLETE": 2}


def test_a_trial_below_the_median_is_pruned_after_its_first_validation(tiny_config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    out.mkdir()
    # An earlier finished trial that scored Dice 1.0 at every epoch: any real trial falls below it.
    study = optuna.create_study(storage=default_storage(out), study_name="medseg-tune", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0}))
    space = _space(tmp_path, pruner={"startup_trials": 1, "warmup_validations": 0})
    result = tune(tiny_config_file, space, 2, out)
    states = [(r["trial"], r["state"], r["epochs"], r["stop_reason"]) for r in result.rows]
    assert states == [(0, "COMPLETE", None, ""), (1, "PRUNED", 1, "pruned")]
    assert result.best is not None and result.best["trial"] == 0
    assert json.loads((out / "search.json").read_text())["trials"] == {"COMPLETE": 1, "PRUNED": 1}


def test_a_trial_learns_and_the_search_reports_what_it_reached(tiny_config_file: Path, tmp_path: Path) -> None:
    """One trial at a fixed, good rate for 10 epochs: its per-epoch validation Dice (what Optuna compares)
    rises to a high value (measured 0.23 at epoch 1 -> 0.93 at epoch 10) and the search reports it."""
    base = yaml.safe_load(tiny_config_file.read_text())
    base["train"]["max_epochs"] = 10
    config = tmp_path / "ten.yaml"
    config.write_text(yaml.safe_dump(base), encoding="utf-8")
    space = _space(tmp_path, lr=[0.03, 0.03], batch_size=[2], loss=["dice_ce"], width=[1.0], dropout=[0.0, 0.0],
                   random_trials=1)
    result = tune(config, space, 1, tmp_path / "search")
    assert [r["state"] for r in result.rows] == ["COMPLETE"]
    study = optuna.load_study(study_name="medseg-tune", storage=default_storage(tmp_path / "search"))
    dice = study.trials[0].intermediate_values
    assert sorted(dice) == list(range(1, 11))
    assert dice[10] > 0.85 and dice[10] > dice[1] + 0.3 and max(dice.values()) == pytest.approx(result.best["val_dice"])
