"""The training loop: one loop, its behaviour set by ExperimentConfig (no trainer subclasses).

Per epoch: patches from the training cases (reshuffled and re-seeded from (seed, epoch)),
AMP on CUDA, gradient-norm clipping, a per-iteration warm-up + decay schedule; every
``val_every`` epochs sliding-window validation (Dice per class beside the background-only
baseline); then ``last.pt`` (and ``best.pt`` on a better Dice) written atomically, then the
CSV, TensorBoard and plots. A non-finite or exploding loss stops the run before the
optimiser step, keeping the last good checkpoint. Resuming restores model, optimiser,
scheduler, scaler, epoch, history, early-stopping state and RNG states.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from medseg.config import ExperimentConfig, config_to_dict
from medseg.errors import ConfigError, MedsegError
from medseg.networks import build_network, get_network_spec, network_geometry
from medseg.networks.norm_statistics import with_norm_statistics
from medseg.networks.precision import bfloat16_native, channels_last_copy
from medseg.training import distributed
from medseg.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    remove_stale_temps,
    restore_rng_state,
    save_checkpoint,
)
from medseg.training.data import prepare_data
from medseg.training.logs import RunLogger, tensorboard_available
from medseg.training.losses import build_loss
from medseg.training.run_folder import (
    RunPaths,
    read_run_config,
    record_start,
    run_folder_lock,
    write_config,
)
from medseg.training.schedule import build_optimizer, build_scheduler
from medseg.training.transfer import freeze_encoder, freeze_norm_statistics, init_from_checkpoint
from medseg.training.validation import validate

LOGGER = logging.getLogger(__name__)

# Called on the main process after each validation with (epoch, mean validation Dice);
# returning True stops the run (stop_reason "stopped"), e.g. a pruned hyperparameter trial.
ValidationCallback = Callable[[int, float], bool]


class TrainingDiverged(MedsegError):
    """The loss became non-finite or exploded; the run stopped and kept its last good checkpoint."""


@dataclass(frozen=True)
class TrainResult:
    """How a run ended.

    Attributes:
        run_dir: the run folder.
        epochs: epochs completed in total (over every start).
        best_epoch: epoch of ``best.pt`` (0 = no validation yet).
        best_dice: its mean validation Dice (NaN without validation).
        stop_reason: ``"max_epochs"``, ``"early_stopping"`` or ``"stopped"`` (``on_validation`` said stop).
        seconds_per_iteration: mean wall time of one training iteration in this start.
        rank: the process that returned this (torchrun); only rank 0 validated, so only
            its ``best_*`` values are meaningful.
    """

    run_dir: Path
    epochs: int
    best_epoch: int
    best_dice: float
    stop_reason: str
    seconds_per_iteration: float
    rank: int = 0


def train(
    config: ExperimentConfig, run_dir: str | Path, on_validation: ValidationCallback | None = None
) -> TrainResult:
    """Start a new run in ``run_dir`` (created; must not hold a run already).

    Args:
        on_validation: optional ``(epoch, val_dice_mean) -> stop?`` called after each validation
            (main process), e.g. to report to a hyperparameter search and prune the trial.

    Raises:
        ConfigError: ``run_dir`` already holds a checkpoint, or the config does not fit the data.
        TrainingDiverged: the loss became non-finite or exploded.
    """
    paths = RunPaths(Path(run_dir))
    with run_folder_lock(paths.root):  # before the check: two fresh runs cannot both pass it
        if paths.last.exists():
            raise ConfigError(
                f"{paths.root} already holds a run; continue it with `medseg train --resume {paths.root}` "
                "or choose another --out"
            )
        return _run(config, paths, fresh=True, on_validation=on_validation)


def resume(run_dir: str | Path, max_epochs: int | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from ``checkpoints/last.pt`` (or start it if it has none).

    Args:
        run_dir: a folder written by ``train``.
        max_epochs: a new total epoch count (default: the run's own).
    """
    paths = RunPaths(Path(run_dir))
    config = read_run_config(paths.root)
    if max_epochs is not None:
        config = replace(config, train=replace(config.train, max_epochs=max_epochs))
    with run_folder_lock(paths.root):
        return _run(config, paths, fresh=not paths.last.exists())


def _run(
    config: ExperimentConfig, paths: RunPaths, fresh: bool, on_validation: ValidationCallback | None = None
) -> TrainResult:
    """Set up the process group, then train; always leave the group."""
    context = distributed.start(config.train.device)
    try:
        return _train(config, paths, fresh, context, on_validation)
    finally:
        distributed.stop(context)


def _seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (MONAI's helper; no cuDNN determinism switch)."""
    from monai.utils import set_determinism

    set_determinism(seed=seed, use_deterministic_algorithms=False)
    torch.backends.cudnn.deterministic = False


def _train(
    config: ExperimentConfig, paths: RunPaths, fresh: bool, context: distributed.DistContext,
    on_validation: ValidationCallback | None = None,
) -> TrainResult:
    settings = config.train
    if settings.max_epochs < 1:
        raise ConfigError(f"train.max_epochs: must be at least 1, got {settings.max_epochs}")
    if settings.val_every < 1:
        raise ConfigError(f"train.val_every: must be at least 1, got {settings.val_every}")
    _seed_everything(config.seed + context.rank)
    geometry = network_geometry(config.network)
    if context.is_main:
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(paths.checkpoints)  # a run killed mid-write leaves its temp file
        if fresh:
            write_config(config, paths)
    context.barrier()
    data = prepare_data(config, geometry, paths, context, fresh)

    model = build_network(config.network).to(context.device)
    finetune = settings.finetune
    lr_factor = finetune.lr_factor if finetune.init_from else 1.0
    if fresh and finetune.init_from:
        report = init_from_checkpoint(model, finetune.init_from)
        LOGGER.info("loaded %d tensors from %s", len(report.loaded), finetune.init_from)
    if finetune.freeze_encoder:
        freeze_encoder(model, config.network.name)
    loss_function = build_loss(config.loss, config.network.out_channels)
    optimizer = build_optimizer(model.parameters(), settings.optimizer, lr_factor)
    iterations = len(data.train_loader)
    scheduler = build_scheduler(optimizer, settings.max_epochs * iterations, settings.schedule)
    use_amp = settings.amp and context.device.type == "cuda"
    # On a CPU with native bfloat16 (AVX512-BF16/AMX), train.amp means bfloat16 autocast: ~2x faster steps,
    # float32 master weights, no loss scaling needed (bfloat16 keeps float32's exponent range).
    cpu_bfloat16 = settings.amp and context.device.type == "cpu" and bfloat16_native()
    autocast = use_amp or cpu_bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    state: dict[str, Any] = {"epoch": 0, "global_step": 0, "history": [], "best_dice": -math.inf,
                             "best_epoch": 0, "stop_reason": ""}
    if not fresh:
        checkpoint = load_checkpoint(paths.last)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if use_amp and checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        state.update(
            epoch=int(checkpoint["epoch"]), global_step=int(checkpoint["global_step"]),
            history=list(checkpoint["history"]), best_dice=float(checkpoint["early_stop"]["best_dice"]),
            best_epoch=int(checkpoint["early_stop"]["best_epoch"]), stop_reason=str(checkpoint["stop_reason"]),
        )
        restore_rng_state(checkpoint["rng"])
    if context.is_main:
        record_start(paths, config, epoch=state["epoch"], device=str(context.device), world_size=context.world_size,
                     amp="bfloat16" if cpu_bfloat16 else use_amp, tensorboard=tensorboard_available(), fresh=fresh)
    trained = DistributedDataParallel(model) if context.distributed else model
    logger = RunLogger(paths.root, data.class_names) if context.is_main else None

    def checkpoint_state(epoch: int) -> dict[str, Any]:
        return {
            "config": config_to_dict(config), "epoch": epoch, "global_step": state["global_step"],
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if use_amp else {}, "rng": capture_rng_state(),
            "history": state["history"], "early_stop": {"best_dice": state["best_dice"], "best_epoch": state["best_epoch"]},
            "stop_reason": state["stop_reason"], "class_names": list(data.class_names),
            "channel_names": list(data.channel_names),
        }

    start_epoch = state["epoch"]
    if state["stop_reason"] == "early_stopping":
        start_epoch = settings.max_epochs  # an early-stopped run stays stopped
    bar = tqdm(total=max(settings.max_epochs - start_epoch, 0) * iterations, unit="it", dynamic_ncols=True,
               disable=not (settings.progress and context.is_main))
    train_seconds, train_iterations = 0.0, 0
    try:
        for epoch in range(start_epoch + 1, settings.max_epochs + 1):
            bar.set_description(f"epoch {epoch}/{settings.max_epochs}")
            data.start_epoch(epoch)
            data.train_transform.set_random_state(seed=(config.seed * 100_003 + epoch * 1_009 + context.rank) % 2**32)
            trained.train()
            if finetune.freeze_norm_statistics:
                freeze_norm_statistics(model)
            started = time.perf_counter()
            losses = []
            for index, batch in enumerate(data.train_loader):
                loss_tensor = _forward(trained, batch, loss_function, optimizer, context, autocast)
                loss = float(loss_tensor.detach())
                # Checked on every process before backward, so all stop together (DDP) and the
                # weights never see a non-finite gradient.
                if context.any_true(not math.isfinite(loss) or loss > settings.max_loss):
                    raise TrainingDiverged(_diverged_message(loss, epoch, index, state, paths, settings.max_loss))
                scaler.scale(loss_tensor).backward()
                _optimizer_step(trained, optimizer, scheduler, scaler, settings.grad_clip_norm)
                state["global_step"] += 1
                losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            seconds = time.perf_counter() - started
            train_seconds += seconds
            train_iterations += len(losses)
            row: dict[str, Any] = {
                "epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1),
                "lr": float(scheduler.get_last_lr()[0]), "epoch_seconds": seconds,
                "seconds_per_iteration": seconds / max(len(losses), 1),
            }
            stop = False
            if epoch % settings.val_every == 0 or epoch == settings.max_epochs:
                improved = halted = False
                if context.is_main and data.val_loader is not None:
                    evaluated = with_norm_statistics(model, config.network.norm_statistics, copy_model=True)
                    if cpu_bfloat16 and get_network_spec(config.network.name).channels_last:
                        evaluated = channels_last_copy(evaluated)  # the inference path's layout (Predictor)
                    metrics = validate(evaluated, data.val_loader, geometry, loss_function, data.class_names,
                                       context.device, settings.sw_overlap, settings.sw_batch_size, autocast,
                                       network=config.network)
                    row.update(metrics)
                    dice = metrics["val_dice_mean"]
                    if math.isfinite(dice) and dice > state["best_dice"] + settings.min_delta:
                        state["best_dice"], state["best_epoch"], improved = dice, epoch, True
                    stop = settings.patience > 0 and epoch - state["best_epoch"] >= settings.patience
                    halted = on_validation is not None and bool(on_validation(epoch, dice))
                stop = context.broadcast_flag(stop or halted)
                if stop:
                    state["stop_reason"] = "stopped" if halted else "early_stopping"
                if context.is_main:
                    row["best_epoch"] = state["best_epoch"]
                    state["history"].append(row)
                    snapshot = checkpoint_state(epoch)
                    if improved:
                        save_checkpoint(snapshot, paths.best)
                    save_checkpoint(snapshot, paths.last)
            elif context.is_main:
                state["history"].append(row)
                save_checkpoint(checkpoint_state(epoch), paths.last)
            if context.is_main:
                logger.write(state["history"], plot="val_loss" in row or epoch == settings.max_epochs)
                if stop and halted:
                    bar.write(f"stopped at epoch {epoch} by the validation callback (e.g. a pruned trial)")
                elif stop:
                    bar.write(f"early stopping at epoch {epoch}: no better validation Dice since epoch "
                              f"{state['best_epoch']} ({settings.patience} epochs of patience)")
            state["epoch"] = epoch
            context.barrier()
            if stop:
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if not state["stop_reason"]:
        state["stop_reason"] = "max_epochs"
    return TrainResult(
        run_dir=paths.root, epochs=state["epoch"], best_epoch=state["best_epoch"],
        best_dice=state["best_dice"] if state["best_epoch"] else math.nan, stop_reason=state["stop_reason"],
        seconds_per_iteration=train_seconds / train_iterations if train_iterations else math.nan,
        rank=context.rank,
    )


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    """A plain tensor on ``device`` (MetaTensor metadata is not needed in the training step)."""
    tensor = value.as_tensor() if isinstance(value, MetaTensor) else torch.as_tensor(value)
    return tensor.to(device, non_blocking=True)


def crop_to_output(label: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Centre-crop a label patch (B, 1, X, Y, Z) to a valid network's output size (DeepMedic)."""
    if tuple(label.shape[2:]) == tuple(size):
        return label
    starts = [(have - want) // 2 for have, want in zip(label.shape[2:], size)]
    return label[:, :, starts[0] : starts[0] + size[0], starts[1] : starts[1] + size[1], starts[2] : starts[2] + size[2]]


def _forward(
    model: nn.Module, batch: dict[str, Any], loss_function: nn.Module, optimizer: torch.optim.Optimizer,
    context: distributed.DistContext, autocast: bool,
) -> torch.Tensor:
    """Zero the gradients and compute the loss of one batch (scalar tensor, graph kept)."""
    image = _as_tensor(batch["image"], context.device)
    label = _as_tensor(batch["label"], context.device)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=context.device.type, enabled=autocast):
        logits = model(image)
    label = crop_to_output(label, tuple(logits.shape[2:]))
    return loss_function(logits.float(), label)


def _optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler, clip: float
) -> None:
    """Clip the gradient norm (after unscaling), step the optimiser, the scaler and the schedule."""
    if clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def _diverged_message(loss: float, epoch: int, index: int, state: dict[str, Any], paths: RunPaths, limit: float) -> str:
    """What happened, where, what was kept and what to try."""
    what = f"the loss is {loss} (not finite)" if not math.isfinite(loss) else f"the loss {loss:.4g} exceeds train.max_loss={limit:g}"
    kept = (f"the last good checkpoint is {paths.last} (epoch {state['epoch']})" if state["epoch"]
            else "no checkpoint was written yet")
    return (
        f"training stopped at epoch {epoch}, step {state['global_step'] + 1} (iteration {index + 1} of the epoch): "
        f"{what}; {kept}. Lower train.optimizer.lr, keep train.grad_clip_norm on, or check the data, "
        f"then resume with `medseg train --resume {paths.root}`"
    )
