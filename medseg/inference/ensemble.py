"""Ensembles of model folders: several networks' calibrated probabilities averaged on the scan's grid.

A model folder becomes an ensemble when its card lists members::

    MODEL/model_card.json   "ensemble": [{"member": "unet-1.5mm", "weight": 0.5}]
    MODEL/members/unet-1.5mm/   a complete model folder (model.yaml, weights.pt, model_card.json,
                                calibration.json), loaded exactly as any model folder

The folder's own network weighs ``1 - sum(member weights)``. At inference
(``medseg.inference.predictor``) each network runs on its own grid (members may differ in spacing,
window or network) with its own temperature, its probabilities are resampled to the scan's grid, and
the weighted mean goes through the folder's own card once: skull-stripped odds, intensity refinement,
clean-up, QC. Members' own clean-up settings are not used.

A member with ``"role": "outline"`` (at most one) is not in the mean: on scans with the skull on it may only
trim the mean's brain outline, by its weight (``medseg.inference.outline_member``); the other weights ignore it.

Why: networks trained on different grids err in different places (a 2 mm network keeps the brain's
extent on whole heads, a 1.5 mm one its tissue boundaries), and where they disagree the mean is
uncertain, which is where the errors are (the shipped brain UNet's card has the numbers). MONAI's
``EnsembleEvaluator`` / ``MeanEnsemble`` average networks that share one input grid and one transform
chain; here each member keeps its own preprocessing, so the mean is taken after each has been
resampled to the source grid.

Safety: a member is a plain folder name inside ``members/`` (no path separators, no ``..``), loaded
with ``weights_only=True`` and ``yaml.safe_load`` like any folder; a member cannot have members.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from medseg.errors import InputError, OutputError
from medseg.evaluation.calibration import CALIBRATION_FILE
from medseg.inference.model_card import (
    EnsembleMember,
    check_member_name,
    check_member_role,
    check_member_weight,
    write_card_text,
)
from medseg.inference.model_folder import (
    CARD_FILE,
    CONFIG_FILE,
    MEMBERS_DIR,
    WEIGHTS_FILE,
    ModelFolder,
    check_member_fits,
    load_model_folder,
    swap_into_place,
)
from medseg.io.atomic import atomic_write_text
from medseg.io.temp_names import create_temp_dir

MEMBER_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, CALIBRATION_FILE)  # what a member folder keeps


def add_member(model_dir: str | Path, member_dir: str | Path, weight: float, *, name: str = "",
               replace_existing: bool = False, role: str = "mean") -> ModelFolder:
    """Copy the model folder ``member_dir`` into ``model_dir`` as an ensemble member weighing ``weight``.

    A mean member: the members already there keep their share of the rest: each weight is multiplied by
    ``1 - weight`` (the folder's own network too), so a first member at 0.5 gives a half-and-half mean. An
    outline member (``role="outline"``) leaves the mean's weights alone; a card has at most one.

    Args:
        model_dir: the ensemble's model folder (its own network stays as it is).
        member_dir: a model folder segmenting the same classes from the same modalities, with its own
            calibration (``medseg calibrate`` it first).
        weight: the new member's weight in (0, 1).
        name: the member's folder name (default: ``member_dir``'s name).
        replace_existing: replace a member of that name (its weight and files).
        role: ``"mean"`` or ``"outline"`` (``medseg.inference.outline_member``).

    Returns:
        The ensemble as loaded after the change.

    Raises:
        InputError: either folder does not load, the member is itself an ensemble or segments other classes.
        OutputError: a member of that name exists and ``replace_existing`` is False, or the folder cannot be written.
        ValueError: a bad weight, name or role, or a second outline member.
    """
    weight = check_member_weight(weight)
    role = check_member_role(role)
    model = load_model_folder(model_dir)
    member = load_model_folder(member_dir)
    name = check_member_name(name or member.path.resolve().name)
    check_member_fits(member, model.card)
    existing = [m for m in model.card.ensemble if m.name != name]
    if any(m.name == name for m in model.card.ensemble) and not replace_existing:
        raise OutputError(f"{model.path}: already has a member '{name}'; pass --force to replace it, or --name")
    if role == "outline" and any(m.role == "outline" for m in existing):
        raise ValueError(f"{model.path}: already has an outline member; remove it first (--remove NAME)")
    # A replaced member is removed first (the others grow in proportion), then the new one takes its weight.
    replaced = sum(m.weight for m in model.card.ensemble if m.name == name and m.role == "mean")
    kept = _rescaled(existing, 1.0 / (1.0 - replaced))
    if role == "mean":
        kept = _rescaled(kept, 1.0 - weight)
    members_dir = model.path / MEMBERS_DIR
    members_dir.mkdir(exist_ok=True)
    temp = create_temp_dir(members_dir, name)
    try:
        for file_name in MEMBER_FILES:
            if (member.path / file_name).is_file():
                shutil.copy2(member.path / file_name, temp / file_name)
        swap_into_place(temp, members_dir / name)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise OutputError(f"{members_dir / name}: cannot write the member ({error.strerror or error})") from None
    _write_card(model, (*kept, EnsembleMember(name, weight, role)))
    return load_model_folder(model.path)


def remove_member(model_dir: str | Path, name: str) -> ModelFolder:
    """Drop the member ``name`` from ``model_dir``; the other mean members' weights grow in proportion.

    Raises:
        InputError: the folder does not load or has no member of that name.
    """
    model = load_model_folder(model_dir)
    names = [m.name for m in model.card.ensemble]
    if name not in names:
        raise InputError(model.path / CARD_FILE, f"no ensemble member '{name}' (members: {', '.join(names) or 'none'})",
                         "`medseg ensemble MODEL_DIR` lists them")
    removed = model.card.ensemble[names.index(name)]
    kept = _rescaled([m for m in model.card.ensemble if m.name != name],
                     1.0 / (1.0 - removed.weight) if removed.role == "mean" else 1.0)
    _write_card(model, tuple(kept))
    shutil.rmtree(model.path / MEMBERS_DIR / name, ignore_errors=True)
    return load_model_folder(model.path)


def _rescaled(members: list[EnsembleMember], factor: float) -> list[EnsembleMember]:
    """Mean members' weights times ``factor``; an outline member's weight is its own and stays."""
    return [replace(m, weight=m.weight * factor) if m.role == "mean" else m for m in members]


def _write_card(model: ModelFolder, members: tuple[EnsembleMember, ...]) -> None:
    """Write the card with ``members`` (whole or not at all; OutputError when it cannot)."""
    atomic_write_text(model.path / CARD_FILE, write_card_text(replace(model.card, ensemble=members)))
