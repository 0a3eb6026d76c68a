"""The learning-rate range test on the tiny sphere data set, and its suggestion rule on known curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from medseg_cli.main import main

from medseg.config import load_experiment
from medseg.errors import ConfigError
from medseg.research.lr_find import lr_find, lr_schedule, suggest_lr


def test_suggestion_is_the_steepest_descent_before_the_minimum() -> None:
    lrs = np.logspace(-6, 0, 61)
    # A loss that falls fastest at 1e-3 (a tanh step in log lr), bottoms at 1e-1 and explodes after it.
    x = np.log10(lrs)
    loss = 1.0 - 0.5 * np.tanh(2.0 * (x + 3.0)) + np.where(x > -1.0, 40.0 * (x + 1.0) ** 2, 0.0)
    assert suggest_lr(lrs, loss) == pytest.approx(1e-3, rel=0.05)
    assert lr_schedule(0, 5, 1e-4, 1.0) == pytest.approx(1e-4) and lr_schedule(4, 5, 1e-4, 1.0) == pytest.approx(1.0)
    assert lr_schedule(2, 5, 1e-4, 1.0) == pytest.approx(1e-2)


def test_range_test_on_tiny_data_gives_a_suggestion_in_range_a_plot_and_a_table(
    tiny_config_file: Path, tmp_path: Path
) -> None:
    config = load_experiment(tiny_config_file)
    result = lr_find(config, tmp_path / "lr", steps=40, start=1e-5, end=10.0)
    assert 2 <= len(result.lrs) <= 40 and result.stop_reason in ("end", "diverged")
    assert 1e-5 <= result.suggestion <= result.lrs[-1] and result.suggestion <= result.min_loss_lr
    assert np.all(np.diff(result.lrs) > 0)
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "lr" / "lr_find.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.lrs) and float(rows[0]["lr"]) == pytest.approx(1e-5, rel=1e-4)
    record = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert record["suggestion"] == pytest.approx(result.suggestion)
    assert not list((tmp_path / "lr").glob("**/*.pt"))  # weights are not kept

    # The network learned during the test (measured: raw loss 1.66 -> 0.17, smoothed 1.66 -> 1.08) ...
    losses, smoothed = np.array(result.losses), np.array(result.smoothed)
    assert losses.min() < 0.3 * losses[0] and smoothed.min() < 0.8 * smoothed[0]
    # ... and the suggestion is where the smoothed loss falls fastest per decade of lr: over windows of
    # 4 steps before the minimum, the drop around the suggestion is at least 80 % of the largest drop.
    lrs, low = np.log10(np.array(result.lrs)), int(np.argmin(smoothed))
    drops = [(smoothed[i] - smoothed[i + 4]) / (lrs[i + 4] - lrs[i]) for i in range(0, low - 3)]
    at = int(np.argmin(np.abs(lrs - np.log10(result.suggestion))))
    around = max(drops[max(at - 4, 0):at + 1])
    assert around > 0 and around >= 0.8 * max(drops), (result.suggestion, around, max(drops))
    # The raw loss falls there too: the 4 steps after the suggestion are lower than the 4 before it.
    assert losses[at + 1:at + 5].mean() < losses[max(at - 4, 0):at].mean()


def test_cli_prints_the_suggestion_and_refuses_a_reversed_range(
    tiny_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["lr-find", "--config", str(tiny_config_file), "--out", str(tmp_path / "lr"), "--steps", "12"]) == 0
    out = capsys.readouterr().out
    assert "suggested learning rate: " in out and "lr_find.png" in out
    assert main(["lr-find", "--config", str(tiny_config_file), "--start", "1", "--end", "0.1"]) == 2
    assert "need 0 < start < end" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at least 2 steps"):
        lr_find(load_experiment(tiny_config_file), tmp_path / "x", steps=1)
