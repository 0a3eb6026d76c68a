"""`medseg train` killed with SIGKILL at six points; `--resume` always ends exactly where an uninterrupted run ends.

Kill points, on one run folder: (1) at start-up, before any checkpoint; (2) while ``last.pt``
is being written (its temp file exists); (3) while ``best.pt`` is being written; (4-6) at
seeded random moments. After every kill the newest checkpoint must load and hold a whole
epoch; after the final resume the weights, step count and loss history must equal those of
a run that was never interrupted, and no temp file may be left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from processes import finish, kill_after, kill_when, start_cli
from training_helpers import tiny_config_dict, write_tiny_dataset

from medseg.config import load_experiment
from medseg.training.checkpoint import load_checkpoint
from medseg.training.loop import train

EPOCHS = 8
SEED = 20240607


def _temp_named(folder: Path, prefix: str) -> bool:
    try:
        return any(name.startswith(prefix) for name in os.listdir(folder))
    except FileNotFoundError:
        return False


def _checkpoint_epoch(run: Path) -> int:
    """The epoch of checkpoints/last.pt (0 when there is none); it must load."""
    last = run / "checkpoints" / "last.pt"
    if not last.exists():
        return 0
    state = load_checkpoint(last)
    assert [row["epoch"] for row in state["history"]] == list(range(1, state["epoch"] + 1))
    return int(state["epoch"])


@pytest.mark.limit(300)
def test_sigkill_at_six_points_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    dataset = write_tiny_dataset(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(dataset, **{"train.max_epochs": EPOCHS, "train.val_every": 2})))
    reference, run, log = tmp_path / "reference", tmp_path / "run", tmp_path / "train.log"
    checkpoints = run / "checkpoints"
    started = time.perf_counter()
    train(load_experiment(config), reference)
    reference_seconds = time.perf_counter() - started
    expected = load_checkpoint(reference / "checkpoints" / "last.pt")

    outcomes: list[tuple[str, int]] = []
    first = start_cli(["train", "--config", str(config), "--out", str(run)], log)
    assert kill_when(first, lambda: (run / "config.yaml").exists(), 60), log.read_text()
    assert _checkpoint_epoch(run) == 0
    outcomes.append(("start-up", 0))

    for name, prefix in (("writing last.pt", ".last.tmp-"), ("writing best.pt", ".best.tmp-")):
        process = start_cli(["train", "--resume", str(run)], log)
        assert kill_when(process, lambda prefix=prefix: _temp_named(checkpoints, prefix), 120), (
            f"never saw a {prefix} file\n{log.read_text()}")
        assert _temp_named(checkpoints, prefix)  # killed mid-write: the temp file is still there
        outcomes.append((name, _checkpoint_epoch(run)))

    # Random moments, scaled to this machine's speed (a restart also redoes start-up and data preparation).
    rng = np.random.default_rng(SEED)
    landed = 0
    for fraction in rng.uniform(0.1, 0.5, size=3):
        delay = 0.5 + float(fraction) * reference_seconds
        before = _checkpoint_epoch(run)
        process = start_cli(["train", "--resume", str(run)], log)
        killed = kill_after(process, delay)
        after = _checkpoint_epoch(run)
        assert before <= after <= EPOCHS  # a kill after the last checkpoint (plots, report) is still a kill
        if killed:
            landed += 1
        else:
            assert after == EPOCHS, log.read_text()  # it finished first: then it finished whole
        outcomes.append((f"random {delay:.2f} s" + ("" if killed else " (finished first)"), after))
    assert landed >= 1, f"no random kill landed mid-run: {outcomes}"

    process = start_cli(["train", "--resume", str(run)], log)
    assert finish(process, 180) == 0, log.read_text()
    print("kill points (what, checkpoint epoch after the kill):", outcomes)

    last = load_checkpoint(checkpoints / "last.pt")
    assert last["epoch"] == expected["epoch"] == EPOCHS
    assert last["global_step"] == expected["global_step"]
    assert [row["epoch"] for row in last["history"]] == list(range(1, EPOCHS + 1))
    assert [row["train_loss"] for row in last["history"]] == [row["train_loss"] for row in expected["history"]]
    for key, tensor in expected["model"].items():
        assert torch.equal(last["model"][key], tensor), key
    assert len((run / "log.csv").read_text().splitlines()) == EPOCHS + 1
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == expected["early_stop"]["best_epoch"]
    assert not [name for name in os.listdir(checkpoints) if name.startswith(".")], os.listdir(checkpoints)
