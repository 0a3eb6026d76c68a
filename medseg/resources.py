"""Bundled resources by name: sample data set definitions, training presets, shipped model folders.

Where they live:

* source tree (a clone, or ``pip install -e .``): the top-level ``datasets/`` and ``models/`` folders;
* installed wheel: the same two folders as ``medseg/_bundled/datasets`` and ``medseg/_bundled/models``,
  put there at build time from the source tree's folders (``setup.py``), never kept twice in the tree.

Kinds and names (a name is a file or folder name without extension):

* ``dataset``: ``datasets/NAME.yaml`` (``medseg sample brain-tissue``);
* ``preset``: ``models/presets/NAME.yaml`` (``medseg train --config brain-tissue-unet``);
* ``model``: ``models/NAME/`` holding ``model.yaml`` (``medseg predict ... --model brain-tissue-unet``).

Resolution order: an existing path first (a file or folder named on the command line always wins),
then the bundled resource of that name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medseg.errors import InputError

Kind = Literal["dataset", "preset", "model"]
BUNDLED_DIR = "_bundled"  # inside the installed ``medseg`` package
MODEL_FILES = ("model.yaml", "weights.pt", "model_card.json", "calibration.json")  # what a shipped model ships
_PACKAGE = Path(__file__).resolve().parent
_WHAT = {"dataset": "sample data set definition", "preset": "training preset", "model": "model folder"}
_LIST_COMMAND = "`medseg models` lists the bundled names"


def resources_root() -> Path:
    """The folder holding ``datasets/`` and ``models/``: the wheel's bundled copy, else the source tree.

    Raises:
        InputError: neither exists (a broken installation).
    """
    for root in (_PACKAGE / BUNDLED_DIR, _PACKAGE.parent):
        if (root / "datasets").is_dir() and (root / "models" / "presets").is_dir():
            return root
    raise InputError(_PACKAGE / BUNDLED_DIR, "medseg's bundled data sets and models are missing",
                     "reinstall medseg from its wheel or source tree (pip install medseg / pip install .)")


def _folder(kind: Kind, root: Path) -> Path:
    return {"dataset": root / "datasets", "preset": root / "models" / "presets", "model": root / "models"}[kind]


def bundled_names(kind: Kind) -> tuple[str, ...]:
    """The bundled names of one kind, sorted."""
    folder = _folder(kind, resources_root())
    if kind == "model":
        return tuple(sorted(p.name for p in folder.iterdir() if (p / "model.yaml").is_file()))
    return tuple(sorted(p.stem for p in folder.glob("*.yaml") if p.is_file()))


def bundled_path(kind: Kind, name: str) -> Path:
    """The bundled file (dataset, preset) or folder (model) called ``name``.

    Raises:
        InputError: no such bundled resource (the message lists the ones there are).
    """
    folder = _folder(kind, resources_root())
    path = folder / name if kind == "model" else folder / f"{name}.yaml"
    valid = bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
    if valid and (path / "model.yaml" if kind == "model" else path).is_file():
        return path
    known = ", ".join(bundled_names(kind)) or "none"
    raise InputError(name, f"neither an existing path nor a bundled {_WHAT[kind]} (bundled: {known})",
                     f"give a path, or one of the bundled names; {_LIST_COMMAND}")


def resolve(kind: Kind, text: str | Path) -> Path:
    """An existing path as it is, else the bundled resource named ``text``.

    An existing path is a file for a dataset or preset and a folder for a model (so a data folder
    called ``brain-tissue`` in the current folder does not hide the bundled definition). ``text`` may
    also name a bundled resource with its extension (``brain-tissue.yaml``) or
    its source-tree path (``datasets/brain-tissue.yaml``) when that path does not exist here
    (an installed medseg run from another folder).

    Raises:
        InputError: neither a path nor a bundled name.
    """
    path = Path(text)
    if path.is_dir() if kind == "model" else path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") and kind != "model" else path.name
    try:
        return bundled_path(kind, name)
    except InputError as error:
        if len(path.parts) > 1 or path.suffix:  # looked like a path: say so
            raise InputError(path, f"{_WHAT[kind]} not found, and '{name}' is not a bundled one "
                             f"(bundled: {', '.join(bundled_names(kind)) or 'none'})",
                             f"check the path, or give a bundled name; {_LIST_COMMAND}") from None
        raise error from None


def is_bundled(path: str | Path) -> bool:
    """Whether ``path`` lies inside the bundled resources (a preset or model that ships with medseg)."""
    try:
        Path(path).resolve().relative_to(resources_root().resolve())
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BundledModel:
    """A shipped model folder and the one-line summary from its card."""

    name: str
    path: Path
    summary: str


def bundled_models() -> list[BundledModel]:
    """Every shipped model with the first sentence of its card's description (or its network name)."""
    models = []
    for name in bundled_names("model"):
        path = bundled_path("model", name)
        models.append(BundledModel(name, path, card_summary(path / "model_card.json")))
    return models


def card_summary(card_path: Path) -> str:
    """One line from a model card: its description's first sentence, else network and classes."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"(unreadable model card: {type(error).__name__})"
    if not isinstance(card, dict):
        return "(unreadable model card)"
    description = " ".join(str(card.get("description") or "").split())
    if description:
        return description.split(". ")[0].rstrip(".")
    classes = card.get("class_names") or []
    return f"{card.get('network', 'network')} for {', '.join(map(str, classes[1:]))}"
