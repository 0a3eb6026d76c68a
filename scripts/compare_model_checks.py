"""Put the before/after shift checks beside each other: a Markdown table and the model card's evaluation section.

    python scripts/compare_model_checks.py --before docs/model-checks/before --after docs/model-checks/after \
        [--card models/brain-tissue-unet/model_card.json] [--out docs/model-checks/comparison.md]

Reads the two ``checks.json`` written by ``scripts/brain_model_checks.py``; rows are matched by condition.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

COLUMNS = (("CSF", ("dice", "CSF")), ("GM", ("dice", "GM")), ("WM", ("dice", "WM")), ("brain", ("brain_dice",)),
           ("out mL", ("outside_ml",)), ("ECE away", ("ece_away",)), ("AUROC", ("auroc_all",)),
           ("agree", ("agreement", "mean")), ("s", ("seconds",)))


def _value(row: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = row
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _cell(before: float | None, after: float | None, name: str) -> str:
    def text(value: float | None) -> str:
        if value is None:
            return ""
        return f"{value:.0f}" if name == "out mL" and value >= 100 else f"{value:.1f}" if name in ("out mL", "s") \
            else f"{value:.3f}" if name == "ECE away" else f"{value:.2f}"
    if before is None and after is None:
        return ""
    return f"{text(before)} → **{text(after)}**"


def compare(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table (before → after per cell) and the rows for the model card."""
    old = {row["condition"]: row for row in before["rows"]}
    lines = ["| condition | " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    card_rows = []
    for row in after["rows"]:
        previous = old.get(row["condition"], {})
        cells = [_cell(_value(previous, path), _value(row, path), name) for name, path in COLUMNS]
        lines.append(f"| {row['condition']} | " + " | ".join(cells) + " |")
        card_rows.append({"condition": row["condition"],
                          "before": {name: _value(previous, path) for name, path in COLUMNS},
                          "after": {name: _value(row, path) for name, path in COLUMNS}})
    return "\n".join(lines) + "\n", card_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--card", type=Path, default=None, help="model_card.json to add the evaluation section to")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file for the table")
    args = parser.parse_args(argv)
    before = json.loads((args.before / "checks.json").read_text())
    after = json.loads((args.after / "checks.json").read_text())
    table, rows = compare(before, after)
    header = (f"Before: `{before['model_dir']}` ({before['git_commit']}); after: `{after['model_dir']}` "
              f"({after['git_commit']}). Cells: before → **after**.\n\n")
    if args.out:
        args.out.write_text("# Brain-tissue model: shift checks, before and after\n\n" + header + table)
    if args.card:
        card = json.loads(args.card.read_text())
        card["evaluation"] = {"checks": "docs/model-checks (scripts/brain_model_checks.py)",
                              "previous_model": before["model_dir"], "rows": rows}
        args.card.write_text(json.dumps(card, indent=2) + "\n")
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
