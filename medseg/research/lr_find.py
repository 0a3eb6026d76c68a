"""Learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks").

The network trains for ``steps`` optimiser steps on the training patients' patches (the loop's own
loaders: test patients are dropped, validation patients unused) while the learning rate grows
exponentially from ``start`` to ``end``. The loss is smoothed with a bias-corrected exponential
moving average; the test stops when the smoothed loss exceeds ``divergence`` x its best so far
(or becomes non-finite). The suggested rate is where the smoothed loss falls fastest (most
negative slope against log lr) between the start and the smoothed minimum, i.e. before the loss
starts to oscillate and explode. The weights and optimiser state are thrown away afterwards.

Writes ``OUT/lr_find.png`` (log-x), ``OUT/lr_find.csv`` (step, lr, loss, smoothed) and
``OUT/lr_find.json`` (the suggestion and where it stopped).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from medseg.config import ExperimentConfig
from medseg.errors import ConfigError
from medseg.io.atomic import atomic_path, atomic_write_text


@dataclass(frozen=True)
class LrFindResult:
    """The range test.

    Attributes:
        lrs: learning rate of each completed step.
        losses: raw training loss of each step.
        smoothed: bias-corrected EMA of the loss.
        suggestion: the suggested learning rate (steepest descent of the smoothed loss).
        min_loss_lr: the rate at the smoothed loss minimum (an upper bound worth knowing).
        stop_reason: ``"end"`` (reached ``end``), ``"diverged"`` (smoothed > divergence x best) or ``"non-finite"``.
        plot: the PNG; ``table``: the CSV.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float
    min_loss_lr: float
    stop_reason: str
    plot: Path
    table: Path


def lr_schedule(step: int, steps: int, start: float, end: float) -> float:
    """Exponential ramp: ``start`` at step 0, ``end`` at step ``steps - 1``."""
    return start * (end / start) ** (step / max(steps - 1, 1))


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The lr of the steepest descent of ``smoothed`` against log10(lr), up to the smoothed minimum.

    The first tenth of the curve (at most 10 points) is skipped: the EMA is still settling there.
    """
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if lrs.size < 3:
        return float(lrs[int(np.argmin(smoothed))]) if lrs.size else math.nan
    stop = int(np.argmin(smoothed)) + 1
    skip = min(10, lrs.size // 10)
    if stop - skip < 3:
        skip = 0
    if stop < 3:
        return float(lrs[stop - 1])
    slopes = np.gradient(smoothed[:stop], np.log10(lrs[:stop]))
    return float(lrs[skip + int(np.argmin(slopes[skip:]))])


def _batches(data: Any, seed: int) -> Iterator[dict[str, Any]]:
    """The training loader, pass after pass (reshuffled and re-seeded per pass like the loop)."""
    epoch = 0
    while True:
        epoch += 1
        data.start_epoch(epoch)
        data.train_transform.set_random_state(seed=(seed * 100_003 + epoch * 1_009) % 2**32)
        yield from data.train_loader


def lr_find(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    steps: int = 200,
    start: float = 1e-6,
    end: float = 1.0,
    beta: float = 0.98,
    divergence: float = 4.0,
    progress: bool = False,
) -> LrFindResult:
    """Run the range test and write the plot, the table and the suggestion into ``out_dir``.

    Raises:
        ConfigError: ``steps < 2``, a non-positive or reversed range, or a config that does not fit the data.
    """
    from monai.utils import set_determinism

    from medseg.networks import build_network, network_geometry
    from medseg.training.data import prepare_data
    from medseg.training.distributed import DistContext
    from medseg.training.loop import crop_to_output
    from medseg.training.losses import build_loss
    from medseg.training.run_folder import RunPaths
    from medseg.training.schedule import build_optimizer

    if steps < 2:
        raise ConfigError(f"--steps: need at least 2 steps, got {steps}")
    if not (0 < start < end) or not math.isfinite(end):
        raise ConfigError(f"--start/--end: need 0 < start < end, got {start:g} and {end:g}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_determinism(seed=config.seed, use_deterministic_algorithms=False)
    use_cuda = config.train.device == "cuda" or (config.train.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    geometry = network_geometry(config.network)
    data = prepare_data(config, geometry, RunPaths(out), DistContext(device=device), fresh=True)
    model = build_network(config.network).to(device).train()
    loss_function = build_loss(config.loss, config.network.out_channels)
    optimizer = build_optimizer(model.parameters(), replace(config.train.optimizer, lr=start))
    clip = config.train.grad_clip_norm

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, stop_reason = 0.0, math.inf, "end"
    batches = _batches(data, config.seed)
    for step in tqdm(range(steps), desc="lr-find", unit="step", disable=not progress, dynamic_ncols=True):
        lr = lr_schedule(step, steps, start, end)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(batches)
        image = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor).to(device)
        label = torch.as_tensor(batch["label"]).as_subclass(torch.Tensor).to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(image)
        loss_tensor = loss_function(logits.float(), crop_to_output(label, tuple(logits.shape[2:])))
        loss = float(loss_tensor.detach())
        if not math.isfinite(loss):
            stop_reason = "non-finite"
            break
        loss_tensor.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        average = beta * average + (1.0 - beta) * loss
        value = average / (1.0 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if value > divergence * best:
            stop_reason = "diverged"
            break
    del model, optimizer  # the range test's weights are not kept

    lr_array, smooth_array = np.array(lrs), np.array(smoothed)
    # Points after the divergence check fired are excluded from the suggestion.
    upto = len(lrs) - 1 if stop_reason == "diverged" else len(lrs)
    suggestion = suggest_lr(lr_array[:upto], smooth_array[:upto])
    min_loss_lr = float(lr_array[int(np.argmin(smooth_array))]) if lrs else math.nan
    table = out / "lr_find.csv"
    atomic_write_text(table, "step,lr,loss,smoothed\n" + "".join(
        f"{i},{lr:.6g},{loss:.6g},{s:.6g}\n" for i, (lr, loss, s) in enumerate(zip(lrs, losses, smoothed))))
    plot = _plot(lr_array, np.array(losses), smooth_array, suggestion, stop_reason, out / "lr_find.png")
    atomic_write_text(out / "lr_find.json", json.dumps({
        "suggestion": suggestion, "min_loss_lr": min_loss_lr, "stop_reason": stop_reason, "steps_done": len(lrs),
        "steps": steps, "start": start, "end": end, "beta": beta, "divergence": divergence,
        "rule": "steepest descent of the smoothed loss against log lr, before its minimum",
        "optimizer": config.train.optimizer.name, "batch_size": config.train.batch_size,
    }, indent=2) + "\n")
    return LrFindResult(tuple(lrs), tuple(losses), tuple(smoothed), suggestion, min_loss_lr, stop_reason, plot, table)


def _plot(lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray, suggestion: float, stop_reason: str,
          path: Path) -> Path:
    """Loss against lr (log-x): raw in grey, smoothed in blue, the suggestion as a red line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6.0, 4.0))
    axis.plot(lrs, losses, color="0.7", linewidth=0.8, label="loss")
    axis.plot(lrs, smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
    if math.isfinite(suggestion):
        axis.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggestion {suggestion:.2g}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss")
    if smoothed.size:
        low = float(min(np.min(smoothed), np.min(losses)))
        high = float(np.max(smoothed[: max(1, smoothed.size // 2)]))
        axis.set_ylim(low - 0.1 * abs(low), max(high, low) * 1.5 + 1e-6)
    axis.set_title(f"Learning-rate range test ({stop_reason})")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=110)
    plt.close(figure)
    return path
