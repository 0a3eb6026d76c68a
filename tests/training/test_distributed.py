"""`torchrun --nproc_per_node 2 -m medseg train` on CPU: gloo, sharded cases, rank-0-only writing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from training_helpers import tiny_config_dict

from medseg.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_train_one_run(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_dataset, **{"train.max_epochs": 2})))
    run = tmp_path / "run"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "apps"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "medseg", "train", "--config", str(config), "--out", str(run),
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run ") == 1  # only rank 0 reports... and writes
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    # 4 training cases sharded over 2 processes, 2 cases per batch: 1 step per epoch (2 when alone).
    assert last["epoch"] == 2 and last["global_step"] == 2
    info = json.loads((run / "run.json").read_text())
    assert [start["world_size"] for start in info["starts"]] == [2]
    assert len((run / "log.csv").read_text().splitlines()) == 3
    assert not any(path.name.startswith(".") for path in run.rglob("*"))
