"""The outputs of ``medseg tune``: results table (CSV + Markdown), Dice-vs-parameter plot, best preset, search.json.

``OUT/search.json`` (format ``medseg-search/1``) is what a model card cites: the study, the
objective, the budget, the space, the best trial and the split facts. ``search_card_entry`` reads
it back as the short dict a model card stores under ``"search"``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from medseg.config import ExperimentConfig, config_to_dict
from medseg.errors import InputError
from medseg.io.atomic import atomic_path, atomic_write_text
from medseg.research.search_space import PARAMS, SearchSpace, apply_params, base_batch_size, space_to_dict

SEARCH_FORMAT = "medseg-search/1"
COLUMNS = ("trial", "state", "val_dice", "epochs", "stop_reason", "lr", "lr_scaled", "batch_size", "patch_size",
           "loss", "width", "dropout", "seconds", "run_dir")
LINEAR_SCALING = ("linear scaling (Goyal et al. 2017): a trial trains at lr * batch_size / base_batch_size; "
                  "the 'lr' column is the rate at base_batch_size, 'lr_scaled' the rate used")


def hide_password(url: str) -> str:
    """A storage URL with any password replaced by ``***`` (safe to print and write)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: state, its best validation Dice (pruned: the best reported), parameters, facts."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.value
        if value is None and trial.intermediate_values:
            value = max(trial.intermediate_values.values())
        attrs = trial.user_attrs
        row: dict[str, Any] = {
            "trial": trial.number, "state": trial.state.name, "val_dice": value,
            "epochs": attrs.get("epochs"), "stop_reason": attrs.get("stop_reason", ""),
            "lr_scaled": attrs.get("lr_scaled"), "seconds": attrs.get("seconds"), "run_dir": attrs.get("run_dir", ""),
        }
        for name in PARAMS:
            row[name] = trial.params.get(name)
        if row["batch_size"] is None:
            row["batch_size"] = attrs.get("batch_size")
        rows.append(row)
    return rows


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The finished (COMPLETE) trial with the highest validation Dice; ties go to the earlier trial."""
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["val_dice"] is not None]
    return max(complete, key=lambda r: (r["val_dice"], -r["trial"])) if complete else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in COLUMNS})
    return buffer.getvalue()


def markdown_text(rows: Sequence[dict[str, Any]], best: dict[str, Any] | None, space: SearchSpace,
                  budget: ExperimentConfig) -> str:
    """The results table, best first, with the objective and the scaling rule stated."""
    columns = ("trial", "state", "val_dice", "epochs", *space.searched(), "lr_scaled", "seconds")
    ordered = sorted(rows, key=lambda r: (r["val_dice"] is None, -(r["val_dice"] or 0.0), r["trial"]))
    lines = [
        "# Hyperparameter search", "",
        f"Objective: best mean validation Dice (foreground classes) within {budget.train.max_epochs} epochs per "
        f"trial, validated every {budget.train.val_every} epoch(s); the test split is never read.",
        f"Batch size and learning rate: {LINEAR_SCALING}.",
        "Pruned trials (MedianPruner) show the best Dice they reached before being stopped.", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
    ]
    for row in ordered:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    lines.append("")
    if best is None:
        lines.append("No trial finished, so there is no best configuration.")
    else:
        params = ", ".join(f"{k}={_cell(best[k])}" for k in space.searched())
        lines.append(f"Best: trial {best['trial']} with validation Dice {best['val_dice']:.4f} ({params}); "
                     "its config is `best.yaml`.")
    return "\n".join(lines) + "\n"


def plot_dice_vs_params(rows: Sequence[dict[str, Any]], space: SearchSpace, path: Path) -> Path:
    """``dice_vs_params.png``: validation Dice against each searched hyperparameter (log-x for lr)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = space.searched()
    columns = min(len(names), 3)
    lines = -(-len(names) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 3.2 * lines), squeeze=False, sharey=True)
    best = best_row(rows)
    for axis in axes.flat[len(names):]:
        axis.set_visible(False)
    for axis, name in zip(axes.flat, names):
        # Choices (categorical) are shown evenly spaced in their order; lr and dropout on a value axis.
        choices = [str(c) for c in getattr(space, name)] if name in ("batch_size", "patch_size", "loss", "width") \
            else None
        for state, style in (("COMPLETE", {"color": "tab:blue"}), ("PRUNED", {"color": "0.6", "marker": "x"})):
            points = [(r[name], r["val_dice"]) for r in rows if r["state"] == state and r["val_dice"] is not None
                      and r[name] is not None]
            if not points:
                continue
            xs = [choices.index(str(x)) if choices else x for x, _ in points]
            axis.scatter(xs, [y for _, y in points], label=state.lower(), **{"marker": "o", **style})
        if best is not None and best[name] is not None:
            x = choices.index(str(best[name])) if choices else best[name]
            axis.scatter([x], [best["val_dice"]], marker="*", s=180, color="tab:red", label="best", zorder=3)
        if name == "lr":
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.set_xlabel(f"lr at batch {space.base_batch_size or 'base'}")
        else:
            axis.set_xlabel(name)
        if choices:
            axis.set_xticks(range(len(choices)), choices, rotation=20)
            axis.set_xlim(-0.5, len(choices) - 0.5)
        axis.grid(alpha=0.3)
    for line in axes:
        line[0].set_ylabel("best validation Dice")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=110)
    plt.close(figure)
    return path


def write_outputs(
    study: Any, out: Path, *, base: ExperimentConfig, space: SearchSpace, space_path: Path, config_path: Path,
    overrides: Sequence[str], budget: ExperimentConfig, storage: str,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, Path | None]:
    """Write every output of the search; returns (rows, best row, best.yaml path or None)."""
    import optuna

    rows = trial_rows(study)
    best = best_row(rows)
    atomic_write_text(out / "results.csv", csv_text(rows))
    atomic_write_text(out / "results.md", markdown_text(rows, best, space, budget))
    plot_dice_vs_params(rows, space, out / "dice_vs_params.png")
    best_path = None
    if best is not None:
        params = {name: best[name] for name in space.searched() if best[name] is not None}
        config = apply_params(base, params, space)
        header = (f"# Best configuration of the search in {out.resolve()} (trial {best['trial']}, validation Dice "
                  f"{best['val_dice']:.4f} at {budget.train.max_epochs} epochs per trial).\n"
                  f"# Base: {config_path.resolve()}; train.max_epochs is the base config's. See search.json.\n")
        best_path = out / "best.yaml"
        atomic_write_text(best_path, header + yaml.safe_dump(config_to_dict(config), sort_keys=False))
    counts = {state: sum(1 for r in rows if r["state"] == state) for state in sorted({r["state"] for r in rows})}
    split = _split_facts(rows)
    content = {
        "format": SEARCH_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "optuna": optuna.__version__,
        "study": {"name": study.study_name, "storage": storage, "direction": "maximize"},
        "objective": "best mean validation Dice over the foreground classes (validation split; test split unused)",
        "base_config": str(config_path.resolve()), "overrides": list(overrides),
        "search_space": {"file": str(space_path.resolve()), **space_to_dict(space)},
        "budget": {"max_epochs": budget.train.max_epochs, "val_every": budget.train.val_every},
        "batch_lr_rule": LINEAR_SCALING, "base_batch_size": base_batch_size(space, base),
        "sampler": f"TPESampler(seed={space.sampler_seed}, n_startup_trials={space.random_trials})",
        "pruner": "MedianPruner" if space.pruner.enabled else "none",
        "trials": counts, "split": split,
        "best": None if best is None else {
            "trial": best["trial"], "val_dice": best["val_dice"], "params": {k: best[k] for k in space.searched()},
            "lr_scaled": best["lr_scaled"], "config": str(best_path.resolve()) if best_path else "",
        },
        "results": [{k: r[k] for k in COLUMNS} for r in rows],
    }
    atomic_write_text(out / "search.json", json.dumps(_json_safe(content), indent=2) + "\n")
    return rows, best, best_path


def _split_facts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Patients per part of the split the trials used (from the first trial's split.json)."""
    for row in rows:
        path = Path(row["run_dir"]) / "split.json" if row["run_dir"] else None
        if path is not None and path.is_file():
            split = json.loads(path.read_text(encoding="utf-8"))
            return {"train": len(split.get("train", [])), "val": len(split.get("val", [])),
                    "test": len(split.get("test", [])), "test_used": False, "seed": split.get("seed")}
    return {}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def search_card_entry(search_json: str | Path) -> dict[str, Any]:
    """The short summary a model card stores under ``"search"``: study, trials, budget, best trial, file hash.

    Raises:
        InputError: the file is missing or not a ``medseg-search/1`` document.
    """
    import hashlib

    path = Path(search_json)
    try:
        data = path.read_bytes()
        content = json.loads(data)
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot read the search record ({error})",
                         "give OUT/search.json of `medseg tune`") from None
    if not isinstance(content, dict) or content.get("format") != SEARCH_FORMAT:
        raise InputError(path, f"not a {SEARCH_FORMAT} search record", "give OUT/search.json of `medseg tune`")
    return {
        "file": str(path.resolve()), "sha256": hashlib.sha256(data).hexdigest(),
        "study": content["study"]["name"], "trials": content["trials"], "budget": content["budget"],
        "objective": content["objective"], "batch_lr_rule": content["batch_lr_rule"], "best": content["best"],
    }
