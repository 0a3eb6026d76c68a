"""Summaries of per-case scores and the tables written from them (CSV, JSON, Markdown).

Rows are "long": one per (case, class, method), method ``"model"`` or ``"baseline"``.
Summary statistics per (method, class, metric) skip NaN values (an HD95 with an empty
structure, a volume difference in % of an empty reference) and say how many they used:
mean, SD (sample SD, ddof = 1; NaN with fewer than two values), median, ``n`` (values
used) and ``n_total``. In JSON, NaN and infinities are written as ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.evaluation.metrics import METRIC_NAMES

METHODS = ("model", "baseline")
TABLE_METRICS = (
    ("dice", "Dice", 3),
    ("hd95_mm", "HD95 (mm)", 2),
    ("surface_dice", "NSD", 3),
    ("volume_diff_ml", "Vol. diff. (mL)", 2),
    ("volume_diff_percent", "Vol. diff. (%)", 1),
)
EXTRA_COLUMNS = ("volume_crps_ml",)


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """mean, sd, median over the finite values, with ``n`` (used) and ``n_total``."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    finite = array[np.isfinite(array)]
    n = int(finite.size)
    return {
        "mean": float(finite.mean()) if n else math.nan,
        "sd": float(finite.std(ddof=1)) if n > 1 else math.nan,
        "median": float(np.median(finite)) if n else math.nan,
        "n": n,
        "n_total": int(len(values)),
    }


def summarise(rows: Sequence[dict[str, Any]], class_names: Sequence[str]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{method: {class name: {metric: describe(...)}}}`` over the rows."""
    summary: dict[str, dict[str, dict[str, dict]]] = {}
    for method in METHODS:
        summary[method] = {}
        for name in class_names:
            selected = [r for r in rows if r["method"] == method and r["class"] == name]
            if not selected:
                continue
            metrics = METRIC_NAMES + tuple(c for c in EXTRA_COLUMNS if selected[0].get(c) is not None)
            summary[method][name] = {m: describe([r.get(m) for r in selected]) for m in metrics}
    return summary


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (empty cells for missing values, ``nan`` for undefined ones)."""
    columns = ("case_id", "class", "label", "method") + METRIC_NAMES + EXTRA_COLUMNS
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return "" if value is None else value


def json_safe(value: Any) -> Any:
    """A copy with NaN/inf floats replaced by None and numpy scalars and arrays by Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_text(content: dict[str, Any]) -> str:
    """Strict JSON (no NaN tokens), indented."""
    return json.dumps(json_safe(content), indent=2, allow_nan=False) + "\n"


def _cell(stats: dict[str, float | int], digits: int) -> tuple[str, str]:
    """('mean ± SD', 'median') strings; '(n=a/b)' when values were skipped."""
    if not stats["n"]:
        return "n/a", "n/a"
    mean = f"{stats['mean']:.{digits}f}"
    if math.isfinite(stats["sd"]):
        mean += f" ± {stats['sd']:.{digits}f}"
    if stats["n"] < stats["n_total"]:
        mean += f" (n={stats['n']}/{stats['n_total']})"
    return mean, f"{stats['median']:.{digits}f}"


def markdown_table(summary: dict[str, dict[str, dict[str, dict]]], class_names: Sequence[str]) -> str:
    """One row per (class, metric): the model's mean ± SD and median beside the baseline's."""
    lines = [
        "| Class | Metric | Model mean ± SD | Model median | Baseline mean ± SD | Baseline median |",
        "|---|---|---|---|---|---|",
    ]
    for name in class_names:
        if name not in summary.get("model", {}):
            continue
        for metric, title, digits in TABLE_METRICS:
            model = _cell(summary["model"][name][metric], digits)
            baseline = ("", "")
            if name in summary.get("baseline", {}):
                baseline = _cell(summary["baseline"][name][metric], digits)
            lines.append(f"| {name} | {title} | {model[0]} | {model[1]} | {baseline[0]} | {baseline[1]} |")
    return "\n".join(lines) + "\n"


def uncertainty_markdown(uncertainty: dict[str, Any], class_names: Sequence[str]) -> str:
    """Calibration and uncertainty quality as a short Markdown list."""
    lines = [
        f"- Expected calibration error (top-label, {uncertainty['n_bins']} bins): {uncertainty['ece']:.4f}",
        f"- Class-wise ECE (mean over classes): {uncertainty['classwise_ece_mean']:.4f}",
        f"- Error-detection AUROC of the normalised entropy: {_number(uncertainty['error_auroc'], 3)}"
        f" (pooled over {uncertainty['n_samples']:,} sampled voxels)",
    ]
    for name in class_names:
        crps = uncertainty.get("volume_crps_ml", {}).get(name)
        if crps is not None:
            lines.append(f"- Volume CRPS, {name}: {_number(crps['mean'], 3)} mL (mean over cases)")
    return "\n".join(lines) + "\n"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
