"""``demo-output/report.md``: the demo's tables, figures and next commands, in Markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg.inference.batch_report import CASE_STAGES
from medseg.io.atomic import atomic_write_text


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _dice_table(dice: Mapping[str, tuple[float, float]]) -> list[str]:
    lines = ["| class | model Dice | baseline Dice |", "|---|---|---|"]
    lines += [f"| {name} | {_number(model)} | {_number(baseline)} |" for name, (model, baseline) in dice.items()]
    return lines


def _case_table(cases: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[str]:
    by_id = {case_id: name for name, case_id in names.items()}
    lines = ["| scan | case id | volumes (mL) | QC flags | seconds |", "|---|---|---|---|---|"]
    for case in cases:
        volumes = ", ".join(f"{k} {v:.1f}" for k, v in case.get("class_volumes_ml", {}).items())
        flags = "; ".join(case.get("qc_flags", [])) or "none"
        timings = case.get("timings_s", {})
        seconds = sum(timings.get(s, 0.0) for s in CASE_STAGES)
        lines.append(f"| {by_id.get(case['case_id'], case['input'])} | {case['case_id']} | {volumes} | {flags} | "
                     f"{seconds:.1f} ({case['status']}) |")
    return lines


def _figure(out: Path, relative: str, caption: str) -> list[str]:
    return [f"![{caption}]({relative})", ""] if (out / relative).is_file() else []


def write_demo_report(result: Any, evaluation: Any, cases: Sequence[Mapping[str, Any]], names: Mapping[str, str],
                      pretrained: bool, epochs: int) -> Path:
    """Write ``result.report_path`` (a ``medseg.demo.DemoResult``) from the evaluation and the batch cases."""
    out = result.out_dir
    model = f"the model folder `{result.model_dir}`" if pretrained else \
        f"a small UNet trained for {epochs} epoch(s) on CPU (`{out / 'run'}`), exported to `{result.model_dir}`"
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    lines = [
        "# medseg demo: brain tissue on the bundled sample", "",
        f"Synthetic T1 subjects built from the MNI ICBM152 template; {model}; the held-out test subjects "
        "(`imagesTs`) predicted with `medseg predict` and scored against `labelsTs` beside the majority-class "
        "baseline (which predicts background everywhere, so its foreground Dice is 0).", "",
        f"Time: {steps}. Prediction: {_number(result.seconds_per_scan, 2)} s per scan.", "",
        "## Dice on the test subjects", "", *_dice_table(result.dice), "",
        "## All metrics (mean ± SD over the test subjects)", "", evaluation.table.rstrip(), "",
        "## Calibration and uncertainty", "",
    ]
    if result.ece is not None:
        lines.append(f"- Temperature scaling fitted on the validation patients: ECE {result.ece[0]:.4f} before, "
                     f"{result.ece[1]:.4f} after.")
    if evaluation.uncertainty is not None:
        lines += [f"- Test subjects, calibrated probabilities: ECE {evaluation.uncertainty['ece']:.4f}; "
                  f"uncertainty predicting errors: AUROC {evaluation.uncertainty['error_auroc']:.3f}."]
    lines += ["", "## Cases", "", *_case_table(cases, names), "", "## Figures", ""]
    lines += _figure(out, "evaluation/dice_boxplot.png", "Dice per class, model and baseline")
    lines += _figure(out, "evaluation/overlays.png", "Contours on the best, median and worst case")
    lines += _figure(out, "evaluation/reliability.png", "Reliability diagram")
    lines += _figure(out, "run/plots/loss.png", "Training loss")
    lines += _figure(out, "run/plots/dice.png", "Validation Dice")
    lines += [
        "## Next", "",
        f"- Open the result in napari: `{result.view_command}`",
        f"- Every file of the batch: `{out / 'predictions' / 'report.json'}`; metrics: `{out / 'evaluation'}`",
        "",
    ]
    return atomic_write_text(result.report_path, "\n".join(lines))
