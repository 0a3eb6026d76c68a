"""`torchrun --nproc_per_node 2 -m medseg train` on CPU: gloo, sharded cases, rank-0-only writing,
and gradients that are really synchronised: both ranks end with the weights of one process that
trained on the combined batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import tiny_config, tiny_config_dict

from medseg.training.checkpoint import load_checkpoint
from medseg.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
# Whole 24^3 volumes as patches (the crop is then the same on every rank and in a single process),
# SGD (linear in the gradient, so float rounding stays rounding), 3 epochs = 3 steps, float32 (bfloat16
# autocast on a CPU that has it rounds to ~1e-3 and would hide an unsynchronised rank's 1e-2 less clearly).
SETTINGS = {"network.patch_size": [24, 24, 24], "train.max_epochs": 3, "train.amp": False,
            "train.optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}}
# Rounding of a 2-way gradient all-reduce vs one batch of 4; an unsynchronised rank differs by ~1e-2.
TOLERANCE = 1e-5


def _max_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


@pytest.mark.slow
def test_two_cpu_processes_train_one_run_with_the_weights_of_the_combined_batch(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_dataset, **SETTINGS)))
    run, weights = tmp_path / "run", tmp_path / "weights"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "apps"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(WORKER), str(weights), "--", "train", "--config", str(config), "--out", str(run),
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run ") == 1  # only rank 0 reports... and writes
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    # 4 training cases sharded over 2 processes, 2 cases per batch: 1 step per epoch (2 when alone).
    assert last["epoch"] == 3 and last["global_step"] == 3
    info = json.loads((run / "run.json").read_text())
    assert [start["world_size"] for start in info["starts"]] == [2]
    assert len((run / "log.csv").read_text().splitlines()) == 4
    assert not any(path.name.startswith(".") for path in run.rglob("*"))

    rank0 = torch.load(weights / "rank0.pt", weights_only=True)
    rank1 = torch.load(weights / "rank1.pt", weights_only=True)
    assert _max_difference(rank0, last["model"]) == 0.0
    assert _max_difference(rank0, rank1) < TOLERANCE
    # One process, one batch of the same 4 cases: the same 3 steps.
    overrides = {key.replace(".", "__"): value for key, value in SETTINGS.items()}
    single = train(tiny_config(tiny_dataset, train__batch_size=4, **overrides), tmp_path / "single")
    assert single.epochs == 3
    alone = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    assert alone["global_step"] == 3
    assert _max_difference(rank0, alone["model"]) < TOLERANCE
    # ... and training moved the weights far beyond that tolerance (ranks started from different seeds).
    assert _max_difference(rank0, torch.load(weights / "rank0_initial.pt", weights_only=True)) > 1e-3
    assert _max_difference(*(torch.load(weights / f"rank{r}_initial.pt", weights_only=True) for r in (0, 1))) > 1e-2
