"""A model folder: everything inference needs, nothing that runs code when loaded.

Layout::

    MODEL/model.yaml         the ExperimentConfig as plain YAML (data paths blanked: irrelevant here)
    MODEL/weights.pt         the network's state_dict only, read with torch.load(weights_only=True)
    MODEL/model_card.json    names, colours, modalities, training facts, QC ranges (medseg.inference.model_card)
    MODEL/calibration.json   optional temperature (medseg.evaluation.calibration); absent = T 1
    MODEL/members/NAME/      optional ensemble members, each a model folder as above, named by the card's
                             "ensemble" list (medseg.inference.ensemble); a member has no members itself

``export_model_folder`` builds one from a training run, into a temporary sibling folder
that is renamed into place when complete.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import nn

from medseg.config import ExperimentConfig, config_to_dict, load_config, load_yaml
from medseg.errors import ConfigError, InputError, OutputError
from medseg.evaluation.calibration import CALIBRATION_FILE, load_calibration
from medseg.inference.model_card import (
    CARD_FILE,
    MEMBER_HINT,
    MEMBERS_DIR,
    EnsembleMember,
    ModelCard,
    check_card_fits,
    read_card,
    write_card_text,
)
from medseg.io.temp_names import create_temp_dir
from medseg.networks import build_network
from medseg.networks.norm_statistics import with_norm_statistics
from medseg.networks.weights import load_state_dict_safely

CONFIG_FILE = "model.yaml"
WEIGHTS_FILE = "weights.pt"
EXPORT_HINT = "make the model folder again with `medseg model-folder RUN_DIR --out MODEL_DIR`"


@dataclass(frozen=True)
class ModelFolder:
    """A loaded model folder.

    Attributes:
        path: the folder.
        config: the experiment the weights were trained with.
        card: the parsed model card.
        state_dict: the network's weights (CPU tensors), checked to fit ``config.network``.
        temperature: temperature-scaling T from calibration.json (1.0 without it).
        members: the ensemble's member folders, in the card's order (``card.ensemble`` has their weights).
    """

    path: Path
    config: ExperimentConfig
    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    temperature: float = 1.0
    members: tuple[ModelFolder, ...] = ()

    def build_network(self) -> nn.Module:
        """The network with the weights loaded, in eval mode, on the CPU."""
        network = build_network(self.config.network)
        network.load_state_dict(self.state_dict, strict=True)
        return with_norm_statistics(network, self.config.network.norm_statistics).eval()


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        InputError: missing, damaged, holding pickled objects beyond tensors (refused), or not a state_dict.
    """
    if not path.is_file():
        raise InputError(path, "weights file not found", EXPORT_HINT)
    return load_state_dict_safely(path, "weights file", "only use weights from a source you trust, and " + EXPORT_HINT)


def check_weights_fit(state: dict[str, torch.Tensor], config: ExperimentConfig, path: Path) -> None:
    """InputError naming missing, unexpected or mis-shaped tensors unless ``state`` fits the config's network."""
    expected = build_network(config.network).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise InputError(
            path,
            f"the weights do not fit the '{config.network.name}' network of {CONFIG_FILE}: " + "; ".join(problems),
            "weights.pt and model.yaml come from different models; " + EXPORT_HINT,
        )


def load_model_folder(model_dir: str | Path) -> ModelFolder:
    """Read and check a model folder.

    Raises:
        InputError: a missing file, a config with unknown keys or wrong values, a card that does not
            fit, weights that do not fit the network or that hold more than tensors, a bad calibration.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise InputError(root, "model folder not found",
                         "give a folder holding model.yaml, weights.pt and model_card.json")
    for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE):
        if not (root / name).is_file():
            raise InputError(root / name, f"the model folder has no {name}", EXPORT_HINT)
    try:
        config = load_config(ExperimentConfig, load_yaml(root / CONFIG_FILE))
        build_network(config.network)
    except ConfigError as error:
        raise InputError(root / CONFIG_FILE, f"invalid model config: {error}", EXPORT_HINT) from None
    card = read_card(root / CARD_FILE)
    check_card_fits(card, config.network.in_channels, config.network.out_channels, root / CARD_FILE)
    state = load_weights(root / WEIGHTS_FILE)
    check_weights_fit(state, config, root / WEIGHTS_FILE)
    members = tuple(_load_member(root, member.name, card) for member in card.ensemble)
    return ModelFolder(root, config, card, state, load_calibration(root), members)


def _load_member(root: Path, name: str, card: ModelCard) -> ModelFolder:
    """The member folder ``root/members/name``, checked to fit an ensemble with ``card`` (``check_member_fits``).

    Raises:
        InputError: missing, or not fitting.
    """
    path = root / MEMBERS_DIR / name
    if not path.is_dir():
        raise InputError(path, f"the model card names ensemble member '{name}' but the folder is missing",
                         MEMBER_HINT)
    member = load_model_folder(path)
    check_member_fits(member, card)
    return member


def check_member_fits(member: ModelFolder, card: ModelCard) -> None:
    """InputError unless ``member`` can join an ensemble with ``card``.

    It may not have members of its own and must segment the same classes from the same modalities.
    """
    if member.members:
        raise InputError(member.path / CARD_FILE, "an ensemble cannot be a member of another ensemble",
                         "add its networks one by one")
    if member.card.class_names != card.class_names or member.card.modalities != card.modalities:
        raise InputError(member.path / CARD_FILE,
                         f"it segments {list(member.card.class_names)} from {list(member.card.modalities)}, the "
                         f"ensemble {list(card.class_names)} from {list(card.modalities)}",
                         "members must segment the same classes from the same modalities")


def inference_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config without machine-specific paths (data, cache, split file, fine-tuning source)."""
    return replace(
        config,
        data=replace(config.data, dataset_json="", cache_dir=""),
        split=replace(config.split, split_file=""),
        train=replace(config.train, finetune=replace(config.train.finetune, init_from="")),
    )


def export_model_folder(
    run_dir: str | Path,
    model_dir: str | Path,
    *,
    checkpoint: Literal["best", "last"] = "best",
    name: str = "",
    description: str = "",
    intended_use: str = "",
    limitations: tuple[str, ...] = (),
    tta: bool | None = None,
    overwrite: bool = False,
    qc_reference: bool = True,
    largest_component: bool = False,
    search_json: str | Path | None = None,
    largest_foreground: bool = False,
    refine_classes: tuple[int, ...] = (),
    foreground_opening_mm: float = 0.0,
    bias_field: str = "none",
    prior_weight: float = 1.0,
    stripped_background_odds: float = 1.0,
    head_background_odds: float = 1.0,
) -> Path:
    """Build a model folder from a training run (atomically).

    Args:
        run_dir: a folder written by ``medseg train``.
        model_dir: the model folder to create.
        checkpoint: ``"best"`` (best validation Dice) or ``"last"``.
        name: model name for the card (default: the folder's name).
        description: a paragraph for the card.
        intended_use: who should use the model on which scans, for what (the card's text for people).
        limitations: known failure modes, one text each.
        tta: the card's default for mirror test-time augmentation (``inference.tta``); None: off, or
            the folder's own setting when re-exporting the same weights.
            Re-exporting the same weights keeps the folder's own description, intended use,
            limitations and TTA default where these are not given, as it keeps its calibration and ensemble
            members.
        overwrite: replace an existing folder holding different weights.
        qc_reference: compute QC ranges from the run's training split (needs the data set).
        largest_component: switch on largest-connected-component postprocessing in the card.
        largest_foreground: keep only the largest connected component of all foreground classes together.
        refine_classes: classes refined against each other by the scan's intensities at inference
            (``medseg.inference.intensity_refinement``); () = none.
        foreground_opening_mm: with ``largest_foreground``, first cut pieces joined through bridges
            narrower than about twice this radius (``medseg.inference.foreground_opening``); 0 = off.
        bias_field: the refinement's bias field (``"none"``, ``"em"``, ``"n4"``).
        prior_weight: exponent on the network's prior in the refinement, in (0, 1].
        stripped_background_odds: factor in (0, 1] on the background's odds at the signal voxels of a scan
            judged skull-stripped (``medseg.inference.stripped_scan``; 1 = off).
        head_background_odds: factor in [1, 4] on the background's odds of a scan with the skull on
            (``stripped_scan.raise_head_background_odds``; 1 = off).
        search_json: the ``search.json`` of the `medseg tune` study the config came from; the card
            records it under ``training.search``.

    Returns:
        ``model_dir``.

    Raises:
        InputError: no such checkpoint, or the run's data cannot be read for the QC ranges.
        OutputError: ``model_dir`` holds a different model and ``overwrite`` is False, or cannot be written.
    """
    from medseg.inference.training_facts import build_card  # local: reads training data only when exporting
    from medseg.training.checkpoint import load_checkpoint
    from medseg.training.run_folder import RunPaths

    paths = RunPaths(Path(run_dir))
    source = paths.best if checkpoint == "best" else paths.last
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"checkpoint: {checkpoint!r} is not 'best' or 'last'")
    if not source.is_file():
        hint = "this run never validated; use --checkpoint last" if checkpoint == "best" and paths.last.is_file() \
            else "train a model first with `medseg train`"
        raise InputError(source, f"no {checkpoint} checkpoint in the run folder", hint)
    state = load_checkpoint(source)
    config = load_config(ExperimentConfig, state["config"])
    weights: dict[str, torch.Tensor] = {k: v.detach().cpu() for k, v in state["model"].items()}
    check_weights_fit(weights, config, source)
    target = Path(model_dir)
    card = build_card(state, paths, config, name or target.name, description, qc_reference, largest_component,
                      checkpoint, largest_foreground=largest_foreground, refine_classes=refine_classes,
                      foreground_opening_mm=foreground_opening_mm, bias_field=bias_field,
                      prior_weight=prior_weight, stripped_background_odds=stripped_background_odds,
                      head_background_odds=head_background_odds)
    if search_json is not None:
        from medseg.research.tune_report import search_card_entry  # local: only for tuned models

        card = replace(card, training={**card.training, "search": search_card_entry(search_json)})
    same_model = _check_target(target, weights, overwrite)
    keep_calibration = same_model and (target / CALIBRATION_FILE).is_file()
    # Same weights: the folder's ensemble members and texts for people stay (re-exporting to change a clean-up
    # setting keeps them).
    old_card = _readable_card(target) if same_model else None
    kept_members = _members_to_keep(target, old_card)
    kept = old_card or replace(card, description="", intended_use="", limitations=(), tta=False)
    card = replace(card, ensemble=kept_members, description=description or kept.description,
                   intended_use=intended_use or kept.intended_use,
                   limitations=tuple(limitations) or kept.limitations, tta=kept.tta if tta is None else tta)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = create_temp_dir(target.parent, target.name)  # the umask's permissions: shared as the user chose
    try:
        for member in kept_members:
            shutil.copytree(target / MEMBERS_DIR / member.name, temp / MEMBERS_DIR / member.name)
        (temp / CONFIG_FILE).write_text(
            yaml.safe_dump(config_to_dict(inference_config(config)), sort_keys=False), encoding="utf-8"
        )
        torch.save(weights, temp / WEIGHTS_FILE)
        (temp / CARD_FILE).write_text(write_card_text(card), encoding="utf-8")
        if keep_calibration:
            shutil.copy2(target / CALIBRATION_FILE, temp / CALIBRATION_FILE)
        swap_into_place(temp, target)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise OutputError(f"{target}: cannot write the model folder ({error.strerror or error})") from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target


def _readable_card(target: Path) -> ModelCard | None:
    """The card of the model folder at ``target``, or None when it cannot be read."""
    try:
        return read_card(target / CARD_FILE)
    except InputError:
        return None


def _members_to_keep(target: Path, card: ModelCard | None) -> tuple[EnsembleMember, ...]:
    """The ensemble members of ``card`` (the folder at ``target``) whose folders are there (() without a card)."""
    if card is None:
        return ()
    members = card.ensemble
    return members if all((target / MEMBERS_DIR / m.name).is_dir() for m in members) else ()


def _check_target(target: Path, weights: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``target`` holds these weights already.

    Raises:
        OutputError: a different model is there and not ``overwrite``.
    """
    if not target.exists():
        return False
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder; choose another --out")
    if not any(target.iterdir()):
        return False
    same = False
    if (target / WEIGHTS_FILE).is_file():
        try:
            old = torch.load(target / WEIGHTS_FILE, map_location="cpu", weights_only=True)
            same = isinstance(old, dict) and old.keys() == weights.keys() and all(
                isinstance(old[k], torch.Tensor) and old[k].shape == v.shape and torch.equal(old[k], v)
                for k, v in weights.items()
            )
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):
            same = False
    if not same and not overwrite:
        raise OutputError(
            f"{target}: already holds a different model (or other files); pass --force to replace it, "
            "or choose another --out"
        )
    # Same weights: a calibration fitted for them stays valid, and so do the ensemble's members.
    return same


def swap_into_place(temp: Path, target: Path) -> None:
    """Rename the finished ``temp`` folder to ``target``, moving an existing ``target`` aside first."""
    if not target.exists():
        os.replace(temp, target)
        return
    old = create_temp_dir(target.parent, target.name, ".old")
    os.replace(target, old / "model")
    try:
        os.replace(temp, target)
    except OSError:
        os.replace(old / "model", target)  # put the previous model back
        raise
    shutil.rmtree(old, ignore_errors=True)
