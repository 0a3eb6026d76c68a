"""Two or more brain-tissue models on the same cases: one markdown report from their shift checks.

Input per model: its ``checks.json`` (``medseg.evaluation.shift_checks.run_checks``), its model card, its
parameter count and a peak-memory measurement (``medseg.evaluation.peak_memory``). Output: a summary table
(parameters, training time, 1 mm head time and memory, calibration) and a per-condition table with
Dice / HD95 / surface Dice per class, every model side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medseg.evaluation.shift_checks import CLASS_NAMES


@dataclass(frozen=True)
class ModelResults:
    """Everything the report says about one model."""

    name: str
    checks: dict[str, Any]
    card: dict[str, Any]
    parameters: int
    memory: dict[str, Any]
    interleaved: dict[str, Any] | None = None  # medseg.evaluation.interleaved_timing, this model's entries


def _number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _mean(values: Sequence[Any]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def _rows(results: ModelResults, group_prefix: str | None = None, exclude_group: str | None = None) -> list[dict]:
    rows = [r for r in results.checks["rows"] if r["group"] != "timing"]
    if group_prefix is not None:
        rows = [r for r in rows if r["group"].startswith(group_prefix)]
    if exclude_group is not None:
        rows = [r for r in rows if r["group"] != exclude_group]
    return rows


def _timing(results: ModelResults, tta: bool) -> float:
    for row in results.checks["rows"]:
        if row["group"] == "timing" and bool(row["tta"]) == tta:
            return float(row["seconds"])
    return math.nan


def summary_table(models: Sequence[ModelResults]) -> str:
    """Markdown: one column per model, one row per fact."""
    def training(card: dict[str, Any]) -> str:
        facts = card.get("training", {})
        seconds = facts.get("training_seconds")
        members = len(card.get("ensemble") or [])
        more = f" (its last stage; + {members} ensemble member(s), each with its own card)" if members else ""
        return f"{seconds / 60:.0f} min, {facts.get('epochs', '?')} epochs{more}" if seconds else "–"

    facts: list[tuple[str, list[str]]] = [
        ("parameters", [f"{m.parameters:,}" for m in models]),
        ("training (CPU, 2 cores; from the card)", [training(m.card) for m in models]),
        ("1 mm whole head: read + predict + write, s (warm)", [_number(_timing(m, False), 1) for m in models]),
        ("... with mirror TTA (the flips each model trained under), s", [_number(_timing(m, True), 1) for m in models]),
        *([(f"1 mm whole head, {models[0].interleaved['rounds']} interleaved rounds: median s (median ratio to "
            f"`{models[0].name}`)", [f"{m.interleaved['median']:.2f} ({m.interleaved['ratio']:.2f}x)" for m in models])]
          if all(m.interleaved for m in models) else []),
        ("peak memory of that scan, MiB (whole process / above the loaded model)",
         [f"{m.memory.get('peak_mib', math.nan):,.0f} / {m.memory.get('scan_mib', math.nan):,.0f}" for m in models]),
        ("sample test: ECE away / all", [
            f"{_number(_mean([r.get('ece_away') for r in _rows(m, 'sample')]), 3)} / "
            f"{_number(_mean([r.get('ece_all') for r in _rows(m, 'sample')]), 3)}" for m in models]),
        ("shifted sets (real + synthetic): ECE away / all, mean", [
            f"{_number(_mean([r.get('ece_away') for r in _rows(m, exclude_group='sample')]), 3)} / "
            f"{_number(_mean([r.get('ece_all') for r in _rows(m, exclude_group='sample')]), 3)}" for m in models]),
        ("shifted sets: AUROC (uncertainty -> error), mean", [
            _number(_mean([r.get("auroc_all") for r in _rows(m, exclude_group="sample")]), 2) for m in models]),
        ("shifted sets: Dice GM / WM, mean", [
            f"{_number(_mean([r['dice'].get('GM') for r in _rows(m, exclude_group='sample')]), 2)} / "
            f"{_number(_mean([r['dice'].get('WM') for r in _rows(m, exclude_group='sample')]), 2)}" for m in models]),
    ]
    lines = ["| | " + " | ".join(f"`{m.name}`" for m in models) + " |", "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in facts]
    return "\n".join(lines)


def condition_table(models: Sequence[ModelResults]) -> str:
    """Markdown: per condition, per model and class, ``Dice / HD95 mm / NSD``."""
    header = ["condition"] + [f"{m.name} {c}" for m in models for c in CLASS_NAMES]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    conditions = [r["condition"] for r in _rows(models[0])]
    indexed = [{r["condition"]: r for r in _rows(m)} for m in models]
    for condition in conditions:
        cells = []
        for rows in indexed:
            row = rows.get(condition)
            for name in CLASS_NAMES:
                if row is None:
                    cells.append("–")
                    continue
                dice = row.get("dice", {}).get(name)
                hd95 = row.get("hd95_mm", {}).get(name)
                nsd = row.get("surface_dice", {}).get(name)
                cells.append(f"{_number(dice, 2)} / {_number(hd95, 1)} / {_number(nsd, 2)}")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(models: Sequence[ModelResults], header: str) -> str:
    """The whole markdown report."""
    return "\n\n".join([
        header,
        summary_table(models),
        "Per condition, each cell `Dice / HD95 mm / surface Dice at 2 mm` against the reference (real scans: "
        "3-class intensity clustering inside the brain mask; synthetic: the generator's labels). Conditions "
        "and metric definitions: `medseg/evaluation/shift_checks.py`.",
        condition_table(models),
    ]) + "\n"
