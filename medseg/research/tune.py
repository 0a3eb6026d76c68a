"""``medseg tune``: hyperparameter search with Optuna on the validation split.

Each trial is an ordinary training run (``medseg.training.loop.train``) in ``OUT/trials/<n>/``
whose config is the base config with the trial's parameters applied
(``medseg.research.search_space.apply_params``). The objective is the run's best mean validation
Dice; it is reported to Optuna after every validation, and Optuna's MedianPruner stops trials
below the median of the finished ones at the same epoch (state PRUNED). The data come from the
loop's own loaders, which drop the test patients of the split before any file is read, so the
test split never takes part in the search.

The study lives in ``OUT/study.db`` (SQLite, embedded) unless ``storage`` names a database URL
that several machines share; ``trials`` is the total the study runs to, so a rerun (or a second
machine) continues the same study until that many trials have finished.

Outputs: ``OUT/results.csv``, ``OUT/results.md``, ``OUT/dice_vs_params.png``, ``OUT/best.yaml``
(the base config with the best parameters: a ready preset) and ``OUT/search.json``
(``medseg.research.tune_report``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medseg.config import ExperimentConfig, load_experiment
from medseg.errors import ConfigError
from medseg.research.search_space import (
    SearchSpace,
    apply_params,
    check_space_fits,
    load_search_space,
)

LOGGER = logging.getLogger(__name__)
STUDY_NAME = "medseg-tune"
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class TuneResult:
    """What a search produced.

    Attributes:
        out_dir: the search folder.
        rows: one dict per trial (the rows of results.csv).
        best: the best finished trial's row (None when no trial finished).
        best_config: ``OUT/best.yaml`` (None when no trial finished).
        storage: the study's storage URL (password hidden).
    """

    out_dir: Path
    rows: tuple[dict[str, Any], ...]
    best: dict[str, Any] | None
    best_config: Path | None
    storage: str


def default_storage(out_dir: Path) -> str:
    """The embedded SQLite study file ``OUT/study.db``."""
    return f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """One trial's parameters from the space (Optuna ``trial.suggest_*``); fixed ranges are not sampled."""
    params: dict[str, Any] = {}
    if space.lr:
        low, high = space.lr
        params["lr"] = low if low == high else trial.suggest_float("lr", low, high, log=True)
    for name in ("batch_size", "patch_size", "loss", "width"):
        choices = getattr(space, name)
        if choices:
            params[name] = trial.suggest_categorical(name, list(choices))
    if space.dropout:
        low, high = space.dropout
        params["dropout"] = low if low == high else trial.suggest_float("dropout", low, high)
    return params


def tune(
    config_path: str | Path,
    space_path: str | Path,
    trials: int,
    out_dir: str | Path,
    *,
    storage: str = "",
    study_name: str = STUDY_NAME,
    overrides: Sequence[str] = (),
    epochs: int | None = None,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> TuneResult:
    """Run (or continue) the search until the study holds ``trials`` finished trials, then write the results.

    Args:
        config_path: the base experiment YAML.
        space_path: the search-space YAML (``medseg.research.search_space``).
        trials: total finished trials (complete, pruned or failed) of the study.
        out_dir: the search folder (created).
        storage: an Optuna storage URL shared by several machines; "" = ``OUT/study.db``.
        study_name: the study inside the storage.
        overrides: ``key=value`` overrides of the base config (also in best.yaml).
        epochs: training epochs per trial (the search budget; best.yaml keeps the base config's).
        progress: show each trial's training progress bar.
        report: called with one line per finished trial.

    Raises:
        ConfigError: a bad config or search space, a space the network cannot take, or ``trials < 1``.
    """
    from medseg.research.requirements import require
    from medseg.research.tune_report import hide_password, write_outputs

    optuna = require("optuna", "medseg tune")
    from medseg.training.loop import TrainingDiverged

    if trials < 1:
        raise ConfigError(f"--trials: must be at least 1, got {trials}")
    out = Path(out_dir)
    base = load_experiment(config_path, list(overrides))
    space = load_search_space(space_path)
    check_space_fits(space, base)
    budget = base if epochs is None else replace(base, train=replace(base.train, max_epochs=int(epochs)))
    if budget.train.max_epochs < 1:
        raise ConfigError(f"--epochs: must be at least 1, got {budget.train.max_epochs}")
    budget = replace(budget, train=replace(budget.train, progress=progress))
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials").mkdir(exist_ok=True)
    url = storage or default_storage(out)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if space.pruner.enabled:
        # Optuna prunes from step n_warmup_steps on; steps are epochs and validations fall every val_every.
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=space.pruner.startup_trials,
            n_warmup_steps=space.pruner.warmup_validations * budget.train.val_every + 1,
        )
    sampler = optuna.samplers.TPESampler(seed=space.sampler_seed, n_startup_trials=space.random_trials)
    study = optuna.create_study(storage=url, study_name=study_name, direction="maximize", pruner=pruner,
                                sampler=sampler, load_if_exists=True)

    def objective(trial: optuna.trial.Trial) -> float:
        params = suggest(trial, space)
        config = apply_params(budget, params, space)
        run_dir = out / "trials" / str(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("lr_scaled", config.train.optimizer.lr)
        trial.set_user_attr("batch_size", config.train.batch_size)
        started = time.perf_counter()

        def on_validation(epoch: int, dice: float) -> bool:
            trial.report(dice if math.isfinite(dice) else 0.0, epoch)
            return trial.should_prune()

        try:
            result = _train_trial(config, run_dir, on_validation)
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("stop_reason", "pruned" if result.stop_reason == "stopped" else result.stop_reason)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if result.stop_reason == "stopped":
            raise optuna.TrialPruned(f"validation Dice below the median at epoch {result.epochs}")
        return result.best_dice if math.isfinite(result.best_dice) else 0.0

    def announce(study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> None:
        if report is not None:
            report(_trial_line(trial))

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(
            objective, n_trials=remaining, catch=(TrainingDiverged,),
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished), announce],
        )
    rows, best, best_config = write_outputs(
        study, out, base=base, space=space, space_path=Path(space_path), config_path=Path(config_path),
        overrides=overrides, budget=budget, storage=hide_password(url),
    )
    return TuneResult(out, tuple(rows), best, best_config, hide_password(url))


def _train_trial(config: ExperimentConfig, run_dir: Path, on_validation: Callable[[int, float], bool]) -> Any:
    """One trial's training run (a separate function so tests can see exactly what a trial trains)."""
    from medseg.training.loop import train

    return train(config, run_dir, on_validation=on_validation)


def _trial_line(trial: Any) -> str:
    """``trial 3 COMPLETE: val Dice 0.612 (lr=0.002, batch_size=2, ...) in 81 s``."""
    value = trial.value
    if value is None and trial.intermediate_values:
        value = max(trial.intermediate_values.values())
    score = "n/a" if value is None else f"{value:.4f}"
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    seconds = trial.user_attrs.get("seconds")
    took = f" in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    return f"trial {trial.number} {trial.state.name}: val Dice {score} ({params}){took}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
