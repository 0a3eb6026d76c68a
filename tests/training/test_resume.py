"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import tiny_config_dict

from medseg.config import load_experiment
from medseg.training.checkpoint import load_checkpoint
from medseg.training.loop import resume, train

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 9


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "apps"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # same threads in every process: same float sums
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "medseg", "train", *args]


def _epochs_logged(run: Path) -> int:
    log = run / "log.csv"
    return max(len(log.read_text().splitlines()) - 1, 0) if log.is_file() else 0


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_dataset, **{"train.max_epochs": EPOCHS, "train.val_every": 2})))
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    process = subprocess.Popen(_command("--config", str(config), "--out", str(killed)), env=_environment(),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _epochs_logged(killed) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    interrupted_at = load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"]
    assert 3 <= interrupted_at < EPOCHS  # killed part-way, with a readable checkpoint

    # Resume and the uninterrupted reference run in this process (one thread, as in the subprocess).
    assert resume(killed).epochs == EPOCHS
    train(load_experiment(config), reference)

    last, expected = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (killed, reference))
    assert last["epoch"] == expected["epoch"] == EPOCHS
    assert last["global_step"] == expected["global_step"]
    assert [row["epoch"] for row in last["history"]] == list(range(1, EPOCHS + 1))  # no epoch lost or doubled
    assert [row["train_loss"] for row in last["history"]] == [row["train_loss"] for row in expected["history"]]
    for name, tensor in expected["model"].items():
        assert torch.equal(last["model"][name], tensor), name
    assert _epochs_logged(killed) == EPOCHS
    best = load_checkpoint(killed / "checkpoints" / "best.pt")
    assert best["epoch"] == expected["early_stop"]["best_epoch"] == last["early_stop"]["best_epoch"]
    assert not list((killed / "checkpoints").glob(".*"))  # no temp file left behind
    starts = yaml.safe_load((killed / "run.json").read_text())["starts"]
    assert [start["epoch"] for start in starts] == [0, interrupted_at]
