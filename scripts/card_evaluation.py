"""Write a comparison run's rows into the model cards' ``evaluation`` section (both models, same cases).

    .venv/bin/python scripts/card_evaluation.py --comparison docs/model-comparison \
        --models models/brain-tissue-unet models/brain-tissue-deepmedic --checks "one idle run, DATE" \
        [--note MODEL=TEXT ...]

Reads ``COMPARISON/<model>/checks.json`` (``scripts/compare_models.py``) for every model and writes, into each
card, ``evaluation = {checks, compared_with, rows, [note]}``: one row per condition with every model's
CSF / GM / WM Dice, brain Dice, mL outside the brain (and more than 5 mm from it), mean HD95, mean surface Dice, ECE away from
boundaries, AUROC, agreement and seconds. The rest of each card is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _cells(row: dict[str, Any]) -> dict[str, float | None]:
    """The card's cells of one checks.json row."""
    dice = row.get("dice") or {}
    return {
        "CSF": _number(dice.get("CSF")), "GM": _number(dice.get("GM")), "WM": _number(dice.get("WM")),
        "brain": _number(row.get("brain_dice")), "out mL": _number(row.get("outside_ml")),
        "far mL": _number(row.get("far_outside_ml")),
        "HD95 mm": _number((row.get("hd95_mm") or {}).get("mean")),
        "NSD": _number((row.get("surface_dice") or {}).get("mean")),
        "ECE away": _number(row.get("ece_away")), "AUROC": _number(row.get("auroc_all")),
        "agree": _number(row.get("agreement")), "s": _number(row.get("seconds")),
    }


def card_rows(comparison: Path, models: list[Path]) -> list[dict[str, Any]]:
    """One row per condition (the first model's order), each model's cells under its folder name."""
    checks = {m.name: json.loads((comparison / m.name / "checks.json").read_text(encoding="utf-8")) for m in models}
    conditions = [row["condition"] for row in checks[models[0].name]["rows"]]
    rows = []
    for condition in conditions:
        entry: dict[str, Any] = {"condition": condition}
        for name, data in checks.items():
            match = next((row for row in data["rows"] if row["condition"] == condition), None)
            entry[name] = _cells(match) if match is not None else None
        rows.append(entry)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparison", required=True, type=Path, help="compare_models.py output folder")
    parser.add_argument("--models", nargs="+", required=True, type=Path, help="model folders (cards written)")
    parser.add_argument("--checks", required=True, help="what the run was (machine, date)")
    parser.add_argument("--note", action="append", default=[], metavar="MODEL=TEXT", help="a note for one card")
    args = parser.parse_args(argv)
    notes = dict(item.split("=", 1) for item in args.note)
    rows = card_rows(args.comparison, args.models)
    for model in args.models:
        path = model / "model_card.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        others = [m.name for m in args.models if m != model]
        card["evaluation"] = {
            "checks": f"{args.comparison} (scripts/compare_models.py), {args.checks}",
            "compared_with": ", ".join(f"models/{name}" for name in others),
            "rows": rows,
            **({"note": notes[model.name]} if model.name in notes else {}),
        }
        text = json.dumps(card, indent=2, allow_nan=False) + "\n"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        print(f"{path}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
