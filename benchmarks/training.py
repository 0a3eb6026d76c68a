"""Training benchmark: iterations per second of the unet and deepmedic presets, and the share of step time
spent waiting for data, on the bundled brain sample at the presets' default patch size and batch.

The real training parts are used (``prepare_data`` loaders with the presets' transforms and caching,
``build_network``, ``build_loss``, ``build_optimizer``); each step is timed in two parts: waiting for
the loader's next batch, and forward + backward + optimiser step. The first ``--warmup`` steps are
not counted (cache filling, oneDNN primitives). Needs the sample: ``medseg sample datasets/brain-tissue.yaml
--out data/brain-tissue``.

Usage:
    python benchmarks/training.py [--iterations 20] [--warmup 3] [--presets brain-tissue-deepmedic]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, write_results  # noqa: E402

ensure_root_on_path()

PRESETS = ("brain-tissue-unet", "brain-tissue-deepmedic")


def measure(preset: str, iterations: int, warmup: int) -> dict[str, Any]:
    """Time ``iterations`` training steps of ``preset`` after ``warmup`` steps."""
    import torch

    from medseg.config import load_experiment
    from medseg.networks import build_network, network_geometry
    from medseg.networks.precision import bfloat16_native
    from medseg.training.data import prepare_data
    from medseg.training.distributed import DistContext
    from medseg.training.loop import crop_to_output
    from medseg.training.losses import build_loss
    from medseg.training.run_folder import RunPaths
    from medseg.training.schedule import build_optimizer

    config = load_experiment(ROOT / "models" / "presets" / f"{preset}.yaml")
    torch.manual_seed(config.seed)
    geometry = network_geometry(config.network)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        data = prepare_data(config, geometry, RunPaths(Path(folder)), DistContext(), fresh=True)
        setup_seconds = time.perf_counter() - started
        model = build_network(config.network).train()
        loss_function = build_loss(config.loss, config.network.out_channels)
        optimizer = build_optimizer(model.parameters(), config.train.optimizer)
        autocast = config.train.amp and bfloat16_native()  # as the training loop on this CPU
        waits, steps = [], []
        batches = iter(())
        while len(steps) < iterations + warmup:
            mark = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(data.train_loader)
                batch = next(batches)
            waited = time.perf_counter() - mark
            mark = time.perf_counter()
            image = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor)
            label = torch.as_tensor(batch["label"]).as_subclass(torch.Tensor)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(image)
            loss = loss_function(logits.float(), crop_to_output(label, tuple(logits.shape[2:])))
            loss.backward()
            optimizer.step()
            waits.append(waited)
            steps.append(time.perf_counter() - mark)
    waits, steps = waits[warmup:], steps[warmup:]
    total = sum(waits) + sum(steps)
    return {
        "preset": preset,
        "network": config.network.name,
        "patch": list(geometry.train_patch),
        "batch_size": config.train.batch_size,
        "iterations": iterations,
        "iterations_per_second": round(len(steps) / total, 3),
        "median_step_seconds": round(statistics.median(w + s for w, s in zip(waits, steps)), 4),
        "data_wait_fraction": round(sum(waits) / total, 4),
        "setup_seconds": round(setup_seconds, 2),
        "num_workers": config.train.num_workers,
        "cache": config.train.cache,
        "bfloat16": autocast,
        "synthetic_stream": config.data.synth.enabled,
    }


def main() -> None:
    """Parse arguments, run both presets, print the table, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="presets by name (default: both)")
    args = parser.parse_args()
    facts = machine()
    rows = [measure(preset, args.iterations, args.warmup) for preset in args.presets]
    table = markdown_table(
        ["preset", "patch", "batch", "it/s", "median step s", "waiting for data", "workers", "cache", "bf16",
         "synthetic stream"],
        [[r["preset"], "x".join(map(str, r["patch"])), r["batch_size"], r["iterations_per_second"],
          r["median_step_seconds"], f"{100 * r['data_wait_fraction']:.1f} %", r["num_workers"], r["cache"],
          r["bfloat16"], r["synthetic_stream"]] for r in rows],
    )
    print(table)
    payload = {"benchmark": "training", "machine": facts, "load_average_end": machine()["load_average"], "rows": rows}
    name = "training" if tuple(args.presets) == PRESETS else "training-" + "-".join(args.presets)
    print(f"wrote {write_results(name, payload, table)}")


if __name__ == "__main__":
    main()
