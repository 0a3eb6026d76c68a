"""The model card (``model_card.json``): what a model segments, its colours, how it was trained, QC ranges.

Layout (format ``medseg-model-card/1``)::

    {"format", "name", "description", ["intended_use": str], ["limitations": [str, ..]],
     "network", "class_names": [..], "colors": ["#rrggbb", ..], "modalities": [..],
     "postprocess": {"largest_component": bool, "min_component_ml": float, ..},
     ["inference": {"tta": bool}], "training": {...facts...}, "qc": {...QCReference.to_dict()...} or null,
     "ensemble": [{"member": NAME, "weight": W, ["role": "mean" | "outline"]}, ..]
                 (optional: medseg.inference.ensemble; an outline member: medseg.inference.outline_member)}

Colours are hex RGB strings, index = label value; background is black (shown transparent).
``intended_use`` (who should use it on which scans, for what) and ``limitations`` (known failure modes, with
the numbers that show them) are for people: `medseg models NAME` prints them, the napari app shows them on the
model's name. ``inference.tta`` (default false) asks for mirror test-time augmentation by default; a caller's
explicit choice (``medseg predict --tta`` / ``--no-tta``, ``Predictor(tta=...)``) wins. Unknown top-level keys are
refused, so a misspelt key never goes silently unread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.inference.bias_field import check_bias_field
from medseg.inference.qc import QCReference

CARD_FORMAT = "medseg-model-card/1"
CARD_FILE = "model_card.json"  # in a model folder
MEMBERS_DIR = "members"  # a model folder's ensemble members: MODEL/members/NAME/
BACKGROUND_COLOR = "#000000"
MAX_OPENING_MM = 50.0  # a larger ball would erode away any organ this project segments
CARD_KEYS = frozenset({"format", "name", "description", "intended_use", "limitations", "network", "class_names",
                       "colors", "modalities", "inference", "postprocess", "training", "qc", "evaluation", "ensemble"})
INFERENCE_KEYS = frozenset({"tta"})
POSTPROCESS_KEYS = frozenset({"largest_component", "min_component_ml", "largest_foreground", "foreground_opening_mm",
                              "intensity_refinement", "stripped_background_odds", "head_background_odds"})
MAX_HEAD_BACKGROUND_ODDS = 4.0  # beyond this the brain's edge goes, not just what lies outside it
# Sasha Trubetskoy's "20 distinct colours" (first 12): readable on grey scans and for common colour-vision deficiencies.
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f58231", "#911eb4",
    "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff",
)
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
# An ensemble member's folder name under MODEL/members/: a plain name, never a path (no separators, no "..").
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
MAX_MEMBER_NAME = 64
MEMBER_HINT = "rebuild the ensemble with `medseg ensemble MODEL_DIR --add MEMBER_DIR`"


def default_colors(class_count: int) -> tuple[str, ...]:
    """Background black, then the palette (cycled past 12 classes)."""
    return (BACKGROUND_COLOR, *(PALETTE[i % len(PALETTE)] for i in range(class_count - 1)))


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    """``"#rrggbb"`` -> (r, g, b) in 0..1."""
    return tuple(int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))


@dataclass(frozen=True)
class PostprocessSettings:
    """Label-map clean-up applied by the Predictor.

    Attributes:
        largest_component: keep only the largest connected component of each class.
        min_component_ml: remove components smaller than this many mL (0 = keep all).
        largest_foreground: keep only the largest connected component of all foreground classes
            together (one organ made of several classes, e.g. brain tissue: drops tissue on the scalp).
        refine_classes: classes whose probabilities are refined against each other by the scan's own
            intensities at its own resolution (``medseg.inference.intensity_refinement``); () = off.
        refine_iterations: EM iterations of that refinement.
        refine_bias_field: the smooth bias field that refinement divides out (``medseg.inference.bias_field``):
            ``"em"`` (fitted inside its EM), ``"n4"`` (N4, before it) or ``"none"`` (intensities as they are).
        refine_prior_weight: exponent on the network's prior in that refinement (1 = as it is; lower lets the
            scan's intensities move tissue boundaries further, ``intensity_refinement.refine_by_intensity``).
        stripped_background_odds: on a scan judged skull-stripped, the factor on the background's odds at its
            signal voxels (``medseg.inference.stripped_scan``; 1 = off).
        head_background_odds: on a scan with the skull on (not judged skull-stripped), the factor >= 1 on the
            background's odds everywhere, after the outline member and before the refinement
            (``stripped_scan.raise_head_background_odds``; 1 = off).
        foreground_opening_mm: before keeping the largest foreground component, cut pieces joined to
            it through bridges narrower than about twice this radius (a morphological opening,
            ``medseg.inference.foreground_opening``; 0 = off).
    """

    largest_component: bool = False
    min_component_ml: float = 0.0
    largest_foreground: bool = False
    refine_classes: tuple[int, ...] = ()
    refine_iterations: int = 8
    foreground_opening_mm: float = 0.0
    refine_bias_field: str = "none"
    refine_prior_weight: float = 1.0
    stripped_background_odds: float = 1.0
    head_background_odds: float = 1.0

    def refinement_dict(self) -> dict[str, Any] | None:
        """The card's ``intensity_refinement`` entry (None when off)."""
        if not self.refine_classes:
            return None
        return {"classes": list(self.refine_classes), "iterations": self.refine_iterations,
                **({"bias_field": self.refine_bias_field} if self.refine_bias_field != "none" else {}),
                **({"prior_weight": self.refine_prior_weight} if self.refine_prior_weight != 1.0 else {})}


def opening_radius(value: Any) -> float:
    """``value`` as a foreground-opening radius in mm; ValueError outside [0, MAX_OPENING_MM] or not a number."""
    radius = float(value)
    if not 0.0 <= radius <= MAX_OPENING_MM:
        raise ValueError(f"foreground_opening_mm must be in [0, {MAX_OPENING_MM}] mm, got {value!r}")
    return radius


MEMBER_ROLES = ("mean", "outline")


@dataclass(frozen=True)
class EnsembleMember:
    """One member of an ensemble card: the folder ``MODEL/members/<name>``, its weight in (0, 1) and its role.

    ``"mean"``: its probabilities join the weighted mean; ``"outline"``: it only trims the mean's brain outline on
    scans with the skull on, by ``weight`` (``medseg.inference.outline_member``); at most one per card.
    """

    name: str
    weight: float
    role: str = "mean"

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.name, "weight": self.weight, **({"role": self.role} if self.role != "mean" else {})}


def check_member_name(name: Any) -> str:
    """``name`` as a member folder name; ValueError for anything that is not one plain folder name."""
    if not isinstance(name, str) or len(name) > MAX_MEMBER_NAME or not _MEMBER_NAME.match(name):
        raise ValueError(f"an ensemble member must be a plain folder name (letters, digits, '.', '_', '-'; "
                         f"at most {MAX_MEMBER_NAME} characters), got {name!r}")
    return name


def ensemble_members(entry: Any) -> tuple[EnsembleMember, ...]:
    """The card's ``ensemble`` list; () when absent.

    Raises:
        ValueError: not a list of ``{"member", "weight", ["role"]}``, a bad or repeated name, a weight outside
            (0, 1), an unknown role, more than one outline member, or mean members' weights summing to 1 or more
            (the folder's own network keeps the rest).
    """
    if entry is None:
        return ()
    if not isinstance(entry, list):
        raise ValueError(f"'ensemble' must be a list of {{'member', 'weight'}}, got {entry!r}")
    members = []
    for item in entry:
        if not isinstance(item, dict) or not {"member", "weight"} <= set(item) <= {"member", "weight", "role"}:
            raise ValueError(f"each 'ensemble' entry takes 'member', 'weight' and optionally 'role', got {item!r}")
        members.append(EnsembleMember(check_member_name(item["member"]), check_member_weight(item["weight"]),
                                      check_member_role(item.get("role", "mean"))))
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"ensemble members repeat a name: {names}")
    if sum(member.role == "outline" for member in members) > 1:
        raise ValueError("an ensemble has at most one outline member")
    if sum(member.weight for member in members if member.role == "mean") >= 1.0 - 1e-9:
        raise ValueError("ensemble member weights must sum to less than 1 (the folder's own network weighs the rest)")
    return tuple(members)


def check_member_weight(weight: Any) -> float:
    """``weight`` as a member's weight; ValueError unless a number in (0, 1)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 < float(weight) < 1.0:
        raise ValueError(f"an ensemble member's weight must be a number in (0, 1), got {weight!r}")
    return float(weight)


def check_member_role(role: Any) -> str:
    """``role`` as a member's role; ValueError unless one of ``MEMBER_ROLES``."""
    if role not in MEMBER_ROLES:
        raise ValueError(f"an ensemble member's role must be one of {', '.join(MEMBER_ROLES)}, got {role!r}")
    return str(role)


@dataclass(frozen=True)
class ModelCard:
    """The parsed model card.

    Attributes:
        name: model name (folder name by default).
        class_names: label names, index = label value, background first.
        colors: ``"#rrggbb"`` per class.
        modalities: input channel names in order.
        network: registry name of the network.
        description: one paragraph for people.
        intended_use: who should use the model on which scans, for what (people's text; "" = not stated).
        limitations: known failure modes, each one sentence or two with the numbers that show it.
        tta: mirror test-time augmentation by default (the card's ``inference.tta``).
        postprocess: clean-up settings.
        training: facts about the training run (command, data, seed, epochs, Dice vs baseline, time...).
        qc: ranges from the training split, or None.
        evaluation: results on named checks beside the previous model's (free-form, for people).
        ensemble: member folders whose calibrated probabilities are averaged with this folder's network's
            (``medseg.inference.ensemble``); () = this network alone.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[str, ...]
    modalities: tuple[str, ...]
    network: str
    description: str = ""
    intended_use: str = ""
    limitations: tuple[str, ...] = ()
    tta: bool = False
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)
    training: dict[str, Any] = field(default_factory=dict)
    qc: QCReference | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    ensemble: tuple[EnsembleMember, ...] = ()

    @property
    def own_weight(self) -> float:
        """The weight of this folder's own network in the ensemble average (1 without mean members)."""
        return 1.0 - sum(member.weight for member in self.ensemble if member.role == "mean")

    @property
    def rgb(self) -> tuple[tuple[float, float, float], ...]:
        """Colours as RGB 0..1 per class."""
        return tuple(hex_to_rgb(c) for c in self.colors)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "format": CARD_FORMAT, "name": self.name, "description": self.description,
            **({"intended_use": self.intended_use} if self.intended_use else {}),
            **({"limitations": list(self.limitations)} if self.limitations else {}),
            "network": self.network,
            **({"inference": {"tta": True}} if self.tta else {}),
            "class_names": list(self.class_names), "colors": list(self.colors), "modalities": list(self.modalities),
            "postprocess": {"largest_component": self.postprocess.largest_component,
                            "min_component_ml": self.postprocess.min_component_ml,
                            "largest_foreground": self.postprocess.largest_foreground,
                            **({"foreground_opening_mm": self.postprocess.foreground_opening_mm}
                               if self.postprocess.foreground_opening_mm > 0 else {}),
                            **({"stripped_background_odds": self.postprocess.stripped_background_odds}
                               if self.postprocess.stripped_background_odds != 1.0 else {}),
                            **({"head_background_odds": self.postprocess.head_background_odds}
                               if self.postprocess.head_background_odds != 1.0 else {}),
                            **({"intensity_refinement": self.postprocess.refinement_dict()}
                               if self.postprocess.refine_classes else {})},
            "training": self.training, "qc": self.qc.to_dict() if self.qc is not None else None,
            **({"evaluation": self.evaluation} if self.evaluation else {}),
            **({"ensemble": [member.to_dict() for member in self.ensemble]} if self.ensemble else {}),
        }


def write_card_text(card: ModelCard) -> str:
    """The card as indented JSON text (NaN written as null)."""
    return json.dumps(_finite(card.to_dict()), indent=2) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no NaN: turn non-finite floats into None."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _strings(data: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    values = data.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise InputError(path, f"'{key}' must be a non-empty list of strings, got {values!r}",
                         "make the model folder again with `medseg model-folder`")
    return tuple(values)


def inference_tta(entry: Any) -> bool:
    """The card's ``inference`` entry's TTA default (False when absent); ValueError on unknown keys or a non-bool."""
    if entry is None:
        return False
    if not isinstance(entry, dict) or set(entry) - INFERENCE_KEYS:
        raise ValueError(f"'inference' takes only {sorted(INFERENCE_KEYS)}, got {entry!r}")
    tta = entry.get("tta", False)
    if not isinstance(tta, bool):
        raise ValueError(f"inference.tta must be true or false, got {tta!r}")
    return tta


def people_text(value: Any, key: str) -> str:
    """``value`` as one of the card's texts for people, stripped; ValueError unless a string."""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string, got {type(value).__name__}")
    return value.strip()


def people_texts(values: Any, key: str) -> tuple[str, ...]:
    """``values`` as a list of the card's texts for people; ValueError unless non-empty strings."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"'{key}' must be a list of non-empty strings, got {values!r}")
    return tuple(v.strip() for v in values)


def refinement_settings(entry: Any, class_count: int) -> tuple[tuple[int, ...], int, str, float]:
    """(classes, iterations, bias field, prior weight) of a card's ``postprocess.intensity_refinement``.

    Absent or null: off.

    Raises:
        ValueError: unknown keys, fewer than two classes, background or unknown classes, bad iterations,
            an unknown bias field, a prior weight outside (0, 1].
    """
    if entry is None:
        return (), 8, "none", 1.0
    if not isinstance(entry, dict) or set(entry) - {"classes", "iterations", "bias_field", "prior_weight"}:
        raise ValueError("intensity_refinement takes only 'classes', 'iterations', 'bias_field' and 'prior_weight'")
    classes = entry.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 < c < class_count for c in classes):
        raise ValueError(f"intensity_refinement.classes must be two or more distinct foreground class indices "
                         f"(1..{class_count - 1}), got {classes!r}")
    iterations = entry.get("iterations", 8)
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= 100:
        raise ValueError(f"intensity_refinement.iterations must be an integer in 1..100, got {iterations!r}")
    return (tuple(classes), iterations, check_bias_field(entry.get("bias_field", "none")),
            check_prior_weight(entry.get("prior_weight", 1.0)))


def check_background_odds(value: Any) -> float:
    """``value`` as the skull-stripped background odds factor; ValueError unless a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"stripped_background_odds must be a number in (0, 1], got {value!r}")
    return float(value)


def check_head_background_odds(value: Any) -> float:
    """``value`` as the whole-head background odds factor; ValueError unless a number in [1, 4]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 1.0 <= float(value) <= MAX_HEAD_BACKGROUND_ODDS:
        raise ValueError(f"head_background_odds must be a number in [1, {MAX_HEAD_BACKGROUND_ODDS:g}], got {value!r}")
    return float(value)


def check_prior_weight(value: Any) -> float:
    """``value`` as the refinement's prior weight; ValueError unless a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"intensity_refinement.prior_weight must be a number in (0, 1], got {value!r}")
    return float(value)


def read_card(path: str | Path) -> ModelCard:
    """Parse ``model_card.json``.

    Raises:
        InputError: unreadable, not a medseg card, or a missing or malformed key (named).
    """
    path = Path(path)
    hint = "make the model folder again with `medseg model-folder RUN_DIR --out MODEL_DIR`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(path, f"cannot read the model card ({error.strerror})", hint) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"the model card is not valid JSON ({error})", hint) from None
    if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
        raise InputError(path, f"not a medseg model card (expected format '{CARD_FORMAT}')", hint)
    unknown_keys = set(data) - CARD_KEYS
    if unknown_keys:
        raise InputError(path, f"the model card has unknown keys {sorted(unknown_keys)} (known: {sorted(CARD_KEYS)})",
                         "fix the key's spelling or remove it")
    try:
        intended_use = people_text(data.get("intended_use", ""), "intended_use")
        limitations = people_texts(data.get("limitations", []), "limitations")
    except ValueError as error:
        raise InputError(path, str(error), "edit the card's text fields by hand") from None
    try:
        tta = inference_tta(data.get("inference"))
    except ValueError as error:
        raise InputError(path, f"'inference' is malformed: {error}", hint) from None
    class_names = _strings(data, "class_names", path)
    modalities = _strings(data, "modalities", path)
    colors = tuple(data.get("colors") or default_colors(len(class_names)))
    if len(colors) != len(class_names) or not all(isinstance(c, str) and _HEX.match(c) for c in colors):
        raise InputError(path, f"'colors' must hold one '#rrggbb' per class ({len(class_names)}), got {colors!r}", hint)
    post = data.get("postprocess") or {}
    unknown = set(post) - POSTPROCESS_KEYS if isinstance(post, dict) else set()
    if unknown:
        raise InputError(path, f"'postprocess' has unknown keys {sorted(unknown)} (known: {sorted(POSTPROCESS_KEYS)})",
                         hint)
    try:
        refine_classes, refine_iterations, bias_field, prior_weight = refinement_settings(
            post.get("intensity_refinement"), len(class_names))
        postprocess = PostprocessSettings(bool(post.get("largest_component", False)),
                                          float(post.get("min_component_ml", 0.0)),
                                          bool(post.get("largest_foreground", False)),
                                          refine_classes, refine_iterations,
                                          opening_radius(post.get("foreground_opening_mm", 0.0)), bias_field,
                                          prior_weight,
                                          check_background_odds(post.get("stripped_background_odds", 1.0)),
                                          check_head_background_odds(post.get("head_background_odds", 1.0)))
    except (TypeError, ValueError, AttributeError) as error:
        raise InputError(path, f"'postprocess' is malformed: {post!r} ({error})", hint) from None
    try:
        ensemble = ensemble_members(data.get("ensemble"))
    except ValueError as error:
        raise InputError(path, f"'ensemble' is malformed: {error}", MEMBER_HINT) from None
    qc = data.get("qc")
    return ModelCard(
        name=str(data.get("name", path.parent.name)), class_names=class_names, colors=colors,
        modalities=modalities, network=str(data.get("network", "")), description=str(data.get("description", "")),
        intended_use=intended_use, limitations=limitations, tta=tta, postprocess=postprocess,
        training=dict(data.get("training") or {}),
        qc=QCReference.from_dict(qc, path) if qc else None,
        evaluation=dict(data.get("evaluation") or {}), ensemble=ensemble,
    )


def check_card_fits(card: ModelCard, in_channels: int, out_channels: int, path: Path) -> None:
    """InputError unless the card's modalities and classes match the network's channel counts."""
    problems: list[str] = []
    if len(card.modalities) != in_channels:
        problems.append(f"{len(card.modalities)} modalities but network.in_channels={in_channels}")
    if len(card.class_names) != out_channels:
        problems.append(f"{len(card.class_names)} classes but network.out_channels={out_channels}")
    if problems:
        raise InputError(path, "the model card does not fit model.yaml: " + "; ".join(problems),
                         "the folder mixes files of different models; re-export it")

