"""Model-card content from a training run: training facts and QC ranges from the TRAINING split only."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from medseg.config import ExperimentConfig
from medseg.data.decathlon import Datalist, read_datalist
from medseg.data.splits import Split, assign_cases, load_split
from medseg.errors import ConfigError, InputError
from medseg.inference.model_card import (
    ModelCard,
    PostprocessSettings,
    check_background_odds,
    check_head_background_odds,
    default_colors,
    opening_radius,
    refinement_settings,
)
from medseg.inference.postprocess import class_volumes_ml
from medseg.inference.qc import QCReference, build_reference, scan_facts
from medseg.io.read import read_case, read_labels
from medseg.training.run_folder import RunPaths


def build_card(
    state: dict[str, Any],
    paths: RunPaths,
    config: ExperimentConfig,
    name: str,
    description: str,
    qc_reference: bool,
    largest_component: bool,
    checkpoint: str,
    largest_foreground: bool = False,
    refine_classes: tuple[int, ...] = (),
    foreground_opening_mm: float = 0.0,
    bias_field: str = "none",
    prior_weight: float = 1.0,
    stripped_background_odds: float = 1.0,
    head_background_odds: float = 1.0,
) -> ModelCard:
    """The model card of a checkpoint ``state`` of the run in ``paths``.

    Raises:
        InputError: ``qc_reference`` is True and the run's data set or split cannot be read.
    """
    class_names = tuple(str(n) for n in state.get("class_names") or ())
    if len(class_names) != config.network.out_channels:
        class_names = ("background", *(f"class_{i}" for i in range(1, config.network.out_channels)))
    datalist = _datalist(config, required=qc_reference)
    modalities = tuple(str(n) for n in state.get("channel_names") or ()) or tuple(config.data.modalities)
    if not modalities and datalist is not None:
        modalities = datalist.modalities
    if len(modalities) != config.network.in_channels:
        modalities = tuple(f"channel_{i}" for i in range(config.network.in_channels))
    split = load_split(paths.split) if paths.split.is_file() else None
    qc = None
    if qc_reference:
        if split is None:
            raise InputError(paths.split, "the run has no split.json, so the training cases are unknown",
                             "export with --no-qc to skip the QC ranges")
        if config.data.synth.enabled:
            qc = synth_reference(config, class_names)
        else:
            qc = training_reference(datalist, split, modalities, class_names,
                                    intensity_ranges=config.transforms.normalize == "range")
    if refine_classes:
        try:
            refinement_settings({"classes": list(refine_classes), "bias_field": bias_field,
                                 "prior_weight": prior_weight}, len(class_names))
        except ValueError as error:
            raise ConfigError(f"--refine-intensity: {error}") from None
    elif bias_field != "none":
        raise ConfigError("--bias-field: needs --refine-intensity (the bias field is divided out for the refinement)")
    elif prior_weight != 1.0:
        raise ConfigError("--prior-weight: needs --refine-intensity (it weighs the network's prior in the refinement)")
    try:
        check_background_odds(stripped_background_odds)
    except ValueError as error:
        raise ConfigError(f"--stripped-background-odds: {error}") from None
    try:
        check_head_background_odds(head_background_odds)
    except ValueError as error:
        raise ConfigError(f"--head-background-odds: {error}") from None
    if foreground_opening_mm and not largest_foreground:
        raise ConfigError("--foreground-opening-mm: needs --largest-foreground (the opening keeps the largest piece)")
    try:
        opening_radius(foreground_opening_mm)
    except ValueError as error:
        raise ConfigError(f"--foreground-opening-mm: {error}") from None
    return ModelCard(
        name=name, class_names=class_names, colors=default_colors(len(class_names)), modalities=modalities,
        network=config.network.name, description=description,
        postprocess=PostprocessSettings(largest_component=largest_component, largest_foreground=largest_foreground,
                                        refine_classes=tuple(refine_classes),
                                        foreground_opening_mm=foreground_opening_mm, refine_bias_field=bias_field,
                                        refine_prior_weight=prior_weight,
                                        stripped_background_odds=stripped_background_odds,
                                        head_background_odds=head_background_odds),
        training=training_summary(state, paths, config, datalist, split, checkpoint), qc=qc,
    )


def _datalist(config: ExperimentConfig, required: bool) -> Datalist | None:
    path = config.data.dataset_json
    if not path or not Path(path).is_file():
        if required:
            raise InputError(path or "data.dataset_json", "the training data set is not available for the QC ranges",
                             "build or mount the data set at the path in the run's config.yaml, or export with --no-qc")
        return None
    return read_datalist(Path(path), check_files=required)


def training_reference(
    datalist: Datalist, split: Split, modalities: tuple[str, ...], class_names: tuple[str, ...],
    intensity_ranges: bool = True,
) -> QCReference:
    """QC ranges from the training part of ``split`` (never validation or test cases).

    ``intensity_ranges``: keep p1/p99 ranges (inputs in physical units, e.g. CT in HU; not MR).
    """
    try:
        parts = assign_cases(datalist.training, split, lambda case: case.patient_id)
    except ConfigError as error:
        raise InputError(datalist.path, str(error), "export with --no-qc, or restore the data set") from None
    facts, volumes = [], []
    for case in parts["train"]:
        volume = read_case(case.images, modalities)
        facts.append(scan_facts(volume))
        if case.label is not None:
            labels = read_labels(case.label, reference=volume)
            volumes.append(class_volumes_ml(labels.array, volume.spacing, class_names))
    if not facts:
        raise InputError(datalist.path, "no training cases in the run's split", "export with --no-qc")
    return build_reference(facts, volumes or [{}], class_names, intensity_ranges=intensity_ranges)


SYNTH_QC_VOLUMES = 12
SYNTH_QC_SEED = 104_729
# What the generator's acquisitions span: voxels from ~0.5 mm up to its thickest slices, and fields
# of view from a tightly cropped skull-stripped brain to a head with neck.
SYNTH_SPACING_MM = (0.4, 10.0)
SYNTH_EXTENT_MM = (90.0, 600.0)
# d' between predicted classes below which the input does not show the classes (real T1 GM/WM: ~2-3).
SYNTH_MIN_CLASS_SEPARATION = 0.75


def synth_reference(config: ExperimentConfig, class_names: tuple[str, ...]) -> QCReference:
    """QC ranges of a model trained on the generative stream: class volumes from seeded draws of the generator,
    geometry from the generator's acquisition ranges, no intensity ranges (MR), one connected structure."""
    from dataclasses import replace

    import numpy as np

    from medseg.data.synth.generator import synthesize
    from medseg.data.synth.params import draw_params
    from medseg.data.synth.source import source_for_contrast
    from medseg.inference.qc import VOLUME_MARGIN

    synth = config.data.synth
    spacing = tuple(float(s) for s in config.transforms.spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = []
    for index in range(SYNTH_QC_VOLUMES):
        params = draw_params(synth, (SYNTH_QC_SEED, index))
        _, labels, _ = synthesize(source_for_contrast(params.contrast, synth.gm_wm_boundary), params,
                                  synth.grid_shape, spacing)
        counts.append(np.bincount(labels.numpy().ravel(), minlength=len(class_names)) * voxel_ml)
    volumes = np.array(counts)
    reference = QCReference(
        cases=SYNTH_QC_VOLUMES,
        class_volume_ml={name: (float(volumes[:, i].min() * (1 - VOLUME_MARGIN)),
                                float(volumes[:, i].max() * (1 + VOLUME_MARGIN)))
                         for i, name in enumerate(class_names) if i > 0},
        intensity={},
        spacing_mm=(SYNTH_SPACING_MM,) * 3,
        extent_mm=(SYNTH_EXTENT_MM,) * 3,
        shape=tuple((int(n), int(n)) for n in synth.grid_shape),
    )
    return replace(reference, single_structure=True, min_class_separation=SYNTH_MIN_CLASS_SEPARATION)


def _history_row(history: list[dict[str, Any]], epoch: int) -> dict[str, Any]:
    """The logged row of ``epoch`` holding validation scores, else the last row with them."""
    validated = [row for row in history if "val_dice_mean" in row]
    for row in validated:
        if int(row.get("epoch", -1)) == epoch:
            return row
    return validated[-1] if validated else {}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def training_summary(
    state: dict[str, Any], paths: RunPaths, config: ExperimentConfig, datalist: Datalist | None,
    split: Split | None, checkpoint: str,
) -> dict[str, Any]:
    """Command, data, seed, epochs, validation Dice per class beside the majority baseline, time, versions."""
    history = list(state.get("history") or [])
    epoch = int(state.get("epoch", 0))
    early = state.get("early_stop") or {}
    chosen = int(early.get("best_epoch", epoch)) if checkpoint == "best" else epoch
    row = _history_row(history, chosen)
    class_names = list(state.get("class_names") or [])
    validation = {
        name: {"dice": _number(row.get(f"val_dice_{name}")), "baseline_dice": _number(row.get(f"baseline_dice_{name}"))}
        for name in class_names[1:]
    }
    seconds = sum(float(r.get("epoch_seconds", 0.0)) for r in history if int(r.get("epoch", 0)) <= epoch)
    run_info: dict[str, Any] = {}
    if paths.info.is_file():
        try:
            run_info = json.loads(paths.info.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            run_info = {}
    starts = run_info.get("starts") or [{}]
    run_name = paths.root.name
    return {
        "command": _recorded_command(paths) or f"medseg train --config {run_name}/config.yaml --out {run_name}",
        "run": run_name,
        "checkpoint": checkpoint,
        "data": {
            "name": datalist.name if datalist is not None else "",
            "description": datalist.description if datalist is not None else "",
            "patients": {part: len(getattr(split, part)) for part in ("train", "val", "test")} if split else {},
        },
        "seed": config.seed,
        "epochs": epoch,
        "best_epoch": int(early.get("best_epoch", 0)),
        "validation_epoch": int(row.get("epoch", 0)) if row else 0,
        "validation": validation,
        "val_dice_mean": _number(row.get("val_dice_mean")),
        "baseline_dice_mean": _number(row.get("baseline_dice_mean")),
        "training_seconds": round(seconds, 1),
        "device": str(starts[-1].get("device", "")),
        "versions": run_info.get("versions", {}),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _recorded_command(paths: RunPaths) -> str:
    """The command line kept in ``RUN/command.txt`` by ``medseg train``, or ``""``."""
    try:
        return paths.command.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
