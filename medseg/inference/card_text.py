"""A model folder's card as text for people: what `medseg models NAME` prints and the napari app shows.

The card (``medseg.inference.model_card``) is JSON for programs; a radiologist choosing a model, or a
researcher comparing two, reads this instead: what the model is for, where it is known to fail, what it
takes and gives, the networks it averages, how it was trained (command, data, time, validation Dice
beside the majority-class baseline) and its results on the card's named checks beside the model it was
compared with.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.inference.model_card import CARD_FILE, MEMBERS_DIR, ModelCard, read_card
from medseg.inference.model_folder import ModelFolder

NOT_STATED = "not stated in the card"
# Evaluation values are shown with this many decimals below 10 (Dice, ECE, AUROC) and rounded above (mL, mm).
DECIMALS = 3
TOOLTIP_WIDTH = 100  # characters per tooltip line


def card_markdown(folder: ModelFolder) -> str:
    """The loaded model folder's card as Markdown (sections: use, limitations, input/output, networks,
    post-processing, training, evaluation)."""
    card = folder.card
    lines = [f"# {card.name}", "", card.description or NOT_STATED, "", "## Intended use", "",
             card.intended_use or NOT_STATED, "", "## Known limitations", ""]
    lines += [f"- {text}" for text in card.limitations] or [NOT_STATED]
    lines += ["", "## Input and output", "", f"- input channels: {', '.join(card.modalities)}",
              "- classes: " + ", ".join(f"{index} {name} ({color})" for index, (name, color)
                                        in enumerate(zip(card.class_names, card.colors)) if index > 0)
              + " (0 background)",
              "", "## Networks", "", *_network_lines(folder), "", "## Post-processing", "",
              *_postprocess_lines(card), "", "## Training", "", *_training_lines(card.training)]
    evaluation = _evaluation_lines(card)
    if evaluation:
        lines += ["", "## Evaluation", "", *evaluation]
    return "\n".join(lines) + "\n"


def card_tooltip(card: ModelCard) -> str:
    """Plain text for a model's name in a list: description, intended use, known limitations, wrapped at
    ``TOOLTIP_WIDTH`` characters (a plain-text tooltip is never wrapped by Qt)."""
    parts = [textwrap.fill(card.description or card.name, TOOLTIP_WIDTH)]
    if card.intended_use:
        parts.append(textwrap.fill(f"Intended use: {card.intended_use}", TOOLTIP_WIDTH))
    if card.limitations:
        bullets = (textwrap.fill(text, TOOLTIP_WIDTH, initial_indent="- ", subsequent_indent="  ")
                   for text in card.limitations)
        parts.append("Known limitations:\n" + "\n".join(bullets))
    return "\n\n".join(parts)


def folder_tooltip(model_dir: str | Path) -> str:
    """``card_tooltip`` of the card in ``model_dir`` (JSON only: no weights loaded, no code run), or why not."""
    try:
        return card_tooltip(read_card(Path(model_dir) / CARD_FILE))
    except InputError as error:
        return f"unreadable model card: {error}"


def _network_lines(folder: ModelFolder) -> list[str]:
    card = folder.card
    lines = [f"- this folder: {card.network}, temperature {folder.temperature:.3g}"
             + (f", weight {card.own_weight:.3g} of the mean" if card.ensemble else "")]
    for entry, member in zip(card.ensemble, folder.members):
        what = "outline member (whole heads: may only trim the mean's outline)" if entry.role == "outline" \
            else "mean member"
        lines.append(f"- {MEMBERS_DIR}/{entry.name}: {member.card.network}, temperature {member.temperature:.3g}, "
                     f"{what}, weight {entry.weight:.3g}")
    lines.append("- mirror test-time augmentation: " + ("on by default (`medseg predict --no-tta` switches it off)"
                                                        if card.tta else "off by default (`medseg predict --tta`)"))
    return lines


def _postprocess_lines(card: ModelCard) -> list[str]:
    post = card.postprocess
    lines = []
    if post.refine_classes:
        names = ", ".join(card.class_names[c] for c in post.refine_classes)
        lines.append(f"- boundaries between {names} refined by the scan's own intensities ({post.refine_iterations} "
                     f"EM iterations, bias field {post.refine_bias_field}, prior weight {post.refine_prior_weight:g})")
    if post.stripped_background_odds != 1.0:
        lines.append(f"- on a scan judged skull-stripped: background odds x {post.stripped_background_odds:g}")
    if post.head_background_odds != 1.0:
        lines.append(f"- on a scan with the skull on: background odds x {post.head_background_odds:g}")
    if post.largest_foreground:
        opening = f" after an opening of {post.foreground_opening_mm:g} mm" if post.foreground_opening_mm else ""
        lines.append(f"- the largest connected piece of all tissue classes kept{opening}")
    if post.largest_component:
        lines.append("- the largest connected piece of each class kept")
    if post.min_component_ml > 0:
        lines.append(f"- pieces under {post.min_component_ml:g} mL removed")
    return lines or ["- none"]


def _training_lines(training: dict[str, Any]) -> list[str]:
    if not training:
        return [NOT_STATED]
    lines = []
    if training.get("command"):
        lines.append(f"- command: `{training['command']}`")
    data = training.get("data")
    if isinstance(data, dict):
        patients = data.get("patients") or {}
        split = ", ".join(f"{count} {part}" for part, count in patients.items()) if isinstance(patients, dict) else ""
        lines.append(f"- data: {data.get('name', '?')}" + (f" ({split} patients)" if split else "")
                     + (f": {data['description']}" if data.get("description") else ""))
    if training.get("epochs") is not None:
        lines.append(f"- epochs: {training['epochs']}" + (
            f" (validation epoch kept: {training['validation_epoch']})" if training.get("validation_epoch") else ""))
    seconds = training.get("training_seconds")
    if isinstance(seconds, (int, float)):
        lines.append(f"- training time: {seconds / 60:.0f} min on {training.get('device', '?')}")
    dice, baseline = training.get("val_dice_mean"), training.get("baseline_dice_mean")
    if isinstance(dice, (int, float)):
        lines.append(f"- validation Dice (mean over classes): {dice:.3f}"
                     + (f", majority-class baseline {baseline:.3f}" if isinstance(baseline, (int, float)) else ""))
    validation = training.get("validation")
    if isinstance(validation, dict):
        for name, scores in validation.items():
            if isinstance(scores, dict) and isinstance(scores.get("dice"), (int, float)):
                baseline_dice = scores.get("baseline_dice")
                lines.append(f"  - {name}: {scores['dice']:.3f}" + (
                    f" (baseline {baseline_dice:.3f})" if isinstance(baseline_dice, (int, float)) else ""))
    return lines or [NOT_STATED]


def _evaluation_lines(card: ModelCard) -> list[str]:
    """The card's evaluation rows as a table: this model's value, the compared model's in brackets."""
    evaluation = card.evaluation
    rows = evaluation.get("rows")
    if not isinstance(rows, list) or not rows:
        return []
    other = evaluation.get("compared_with")
    other_name = str(other).rstrip("/").split("/")[-1] if other else ""
    columns: list[str] = []
    for row in rows:
        for key, value in (row.get(card.name) or {}).items() if isinstance(row, dict) else ():
            if key not in columns and _number(value):
                columns.append(key)
    lines = []
    if evaluation.get("checks"):
        lines += [f"Checks: {evaluation['checks']}", ""]
    if other_name:
        lines += [f"Each cell: {card.name} ({other_name}).", ""]
    lines += ["| condition | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        if not isinstance(row, dict):
            continue
        own, theirs = row.get(card.name) or {}, row.get(other_name) or {}
        cells = [_cell(own.get(key)) + (f" ({_cell(theirs.get(key))})" if other_name and _number(theirs.get(key))
                                        else "") for key in columns]
        lines.append(f"| {row.get('condition', '?')} | " + " | ".join(cells) + " |")
    return lines


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell(value: Any) -> str:
    if not _number(value):
        return ""
    return f"{value:.{DECIMALS}f}" if abs(value) < 10 else f"{value:.0f}"
