"""`medseg demo`: the whole job on the bundled sample, in a few minutes on a laptop CPU.

Steps (each reuses the library function the CLI would call):

1. build the brain-tissue sample (``medseg.data.build.build_sample``; nothing is downloaded);
2. train a small UNet briefly (``medseg.training.loop.train`` with the brain-tissue preset and
   demo settings), export the model folder and fit temperature scaling on the validation
   patients; or take a ready model folder with ``pretrained``;
3. predict the held-out test subjects (``imagesTs``) with ``medseg.inference.batch.run_batch``;
4. evaluate against ``labelsTs`` beside the majority-class baseline
   (``medseg.evaluation.evaluate_folders``);
5. write ``OUT/report.md`` with the tables, the figures and the command that opens the result
   in napari.

Rerunning reuses what is done: the data set build and the batch prediction are idempotent, and
an existing training run is resumed up to ``epochs`` (a finished one is only re-exported).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.types import source_name

LOGGER = logging.getLogger(__name__)
# Bundled names (medseg.resources); a path works as well.
DEFAULT_DEFINITION = "brain-tissue"
DEFAULT_PRESET = "brain-tissue-unet"
DEFAULT_EPOCHS = 30
# Demo training settings on top of the preset: smaller patches, every non-test case trains
# (imagesTs is the held-out test set), validation only every 10 epochs, and the sample's files
# rather than the preset's generative stream (which needs about an hour on 2 cores to pay off).
DEMO_OVERRIDES = (
    "data.synth.enabled=false",
    "network.patch_size=[48, 48, 48]",
    "split.test_fraction=0.0",
    "train.val_every=10",
    "train.schedule.warmup_iterations=10",
)


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced.

    Attributes:
        out_dir: the demo folder; ``report_path`` is its ``report.md``.
        model_dir: the model folder used.
        dice: ``{class: (model mean Dice, baseline mean Dice)}`` on the test subjects.
        ece: ``(before, after)`` temperature scaling on the validation voxels (None with ``pretrained``),
        test_ece: ECE of the calibrated probabilities on the test subjects.
        seconds: wall seconds per step (``data``, ``train``, ``calibrate``, ``predict``, ``evaluate``, ``total``).
        seconds_per_scan: mean prediction time per test scan (read + predict + write).
        view_command: the command that opens the result in napari.
    """

    out_dir: Path
    report_path: Path
    model_dir: Path
    dice: dict[str, tuple[float, float]]
    ece: tuple[float, float] | None
    test_ece: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    seconds_per_scan: float | None = None
    view_command: str = ""


def run_demo(
    out_dir: str | Path = "demo-output",
    data_dir: str | Path = "data",
    *,
    pretrained: str | Path | None = None,
    epochs: int = DEFAULT_EPOCHS,
    definition: str | Path = DEFAULT_DEFINITION,
    preset: str | Path = DEFAULT_PRESET,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> DemoResult:
    """Build the sample, train (or take ``pretrained``), predict the test subjects, evaluate, report.

    Args:
        out_dir: the demo folder (``run/``, ``model/``, ``predictions/``, ``evaluation/``, ``report.md``).
        data_dir: where the sample data set is built (``DATA/<name>``; reused when up to date).
        pretrained: a model folder (or a shipped model's name) to use instead of training.
        epochs: training epochs (total, also when a run is resumed).
        definition: the sample definition YAML (or a bundled definition's name).
        preset: the experiment preset YAML trained from (or a bundled preset's name).
        overrides: extra ``key=value`` config overrides (after the demo's own).
        progress: show progress bars.

    Raises:
        ConfigError, InputError, OutputError: as the steps raise them.
    """
    from medseg.data.build import build_sample
    from medseg.data.sample_config import load_sample_definition
    from medseg.evaluation.report import evaluate_folders
    from medseg.inference.batch import run_batch
    from medseg.resources import resolve

    definition, preset = resolve("dataset", definition), resolve("preset", preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = mark = time.perf_counter()

    sample = load_sample_definition(definition)
    dataset_json = build_sample(definition, Path(data_dir) / sample.name).resolve()
    data_root = dataset_json.parent
    seconds["data"] = _lap(mark)

    ece = None
    if pretrained is None:
        mark = time.perf_counter()
        run_dir = _train(out / "run", preset, dataset_json, epochs, [*DEMO_OVERRIDES, *overrides], progress)
        seconds["train"] = _lap(mark)
        mark = time.perf_counter()
        model_dir, ece = _export_and_calibrate(run_dir, out / "model", dataset_json)
        seconds["calibrate"] = _lap(mark)
    else:
        model_dir = resolve("model", pretrained)

    mark = time.perf_counter()
    batch = run_batch(data_root / "imagesTs", model_dir, out / "predictions", uncertainty=True,
                      probabilities=True, progress=progress)
    seconds["predict"] = _lap(mark)
    failed = [case for case in batch.cases if case["status"] == "failed"]
    if failed:
        from medseg.errors import InputError

        case = failed[0]
        raise InputError(data_root / "imagesTs" / case["input"], f"prediction failed at {case['stage']}: "
                         f"{case['reason']}", f"see {batch.report_path}")

    mark = time.perf_counter()
    by_name = _link_for_evaluation(batch.cases, out / "predictions", out / "evaluation-input")
    evaluation = evaluate_folders(out / "evaluation-input", data_root / "labelsTs", out / "evaluation",
                                  class_names=_class_names(model_dir), images_dir=data_root / "imagesTs")
    seconds["evaluate"] = _lap(mark)
    seconds["total"] = _lap(started)

    view = f"medseg view {data_root / 'imagesTs'} --pred {out / 'predictions'}"
    result = DemoResult(
        out_dir=out, report_path=out / "report.md", model_dir=model_dir, dice=_dice(evaluation.summary), ece=ece,
        test_ece=evaluation.uncertainty["ece"] if evaluation.uncertainty else None, seconds=seconds,
        seconds_per_scan=_per_scan(batch.cases), view_command=view,
    )
    from medseg.demo_report import write_demo_report  # the Markdown lives in its own module

    write_demo_report(result, evaluation, batch.cases, by_name, pretrained is not None, epochs)
    return result


def _lap(mark: float) -> float:
    return round(time.perf_counter() - mark, 1)


def _train(run_dir: Path, preset: str | Path, dataset_json: Path, epochs: int, overrides: Sequence[str],
           progress: bool) -> Path:
    """Train the demo UNet in ``run_dir``; an existing run there is resumed up to ``epochs``."""
    from medseg.config import load_experiment
    from medseg.training.loop import resume, train
    from medseg.training.run_folder import RunPaths

    if RunPaths(run_dir).last.is_file():
        LOGGER.info("resuming the demo run in %s up to %d epochs", run_dir, epochs)
        return resume(run_dir, max_epochs=epochs).run_dir
    config = load_experiment(preset, [f"data.dataset_json={dataset_json}", f"train.max_epochs={epochs}",
                                      f"train.progress={'true' if progress else 'false'}", "train.device=cpu",
                                      *overrides])
    return train(config, run_dir).run_dir


def _export_and_calibrate(run_dir: Path, model_dir: Path, dataset_json: Path) -> tuple[Path, tuple[float, float]]:
    """Export the best checkpoint (the last one if the run never validated) and fit the temperature.

    ``RUN/demo_export.json`` remembers which checkpoint was exported and calibrated, so a rerun
    with an unchanged run keeps the model folder as it is (and the batch's complete cases with it).
    """
    import json

    from medseg.inference.calibrate import calibrate_model
    from medseg.inference.completion import file_sha256
    from medseg.inference.model_folder import export_model_folder
    from medseg.io.atomic import atomic_write_text
    from medseg.training.run_folder import RunPaths

    paths = RunPaths(run_dir)
    checkpoint = "best" if paths.best.is_file() else "last"
    digest = file_sha256(paths.best if checkpoint == "best" else paths.last)
    memo = run_dir / "demo_export.json"
    try:
        done = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = {}
    if done.get("checkpoint_sha256") == digest and done.get("model_dir") == str(model_dir.resolve()) and \
            (model_dir / "calibration.json").is_file():
        return model_dir, (float(done["ece_before"]), float(done["ece_after"]))
    export_model_folder(run_dir, model_dir, checkpoint=checkpoint, overwrite=True,
                        description="medseg demo: a small UNet trained briefly on the bundled brain-tissue sample")
    calibration = calibrate_model(model_dir, dataset_json, paths.split)
    atomic_write_text(memo, json.dumps({"checkpoint_sha256": digest, "model_dir": str(model_dir.resolve()),
                                        "ece_before": calibration.ece_before, "ece_after": calibration.ece_after}))
    return model_dir, (calibration.ece_before, calibration.ece_after)


def _link_for_evaluation(cases: Sequence[dict[str, Any]], predictions: Path, folder: Path) -> dict[str, str]:
    """``folder/<scan name>/`` -> the case's outputs (links, or copies where links are not allowed).

    ``medseg evaluate`` pairs predictions with references by name, and batch case ids are
    pseudonymous, so the demo maps them back by the input file name. Returns {scan name: case id}.
    """
    if folder.exists():
        shutil.rmtree(folder)
    mapping = {}
    for case in cases:
        name = source_name(case["input"])
        mapping[name] = case["case_id"]
        target = folder / name
        target.mkdir(parents=True)
        for file_name in ("seg.nii.gz", "probabilities.nii.gz"):
            source = predictions / case["case_id"] / file_name
            try:
                os.symlink(os.path.relpath(source, target), target / file_name)
            except OSError:  # file systems without symbolic links
                shutil.copy2(source, target / file_name)
    return mapping


def _class_names(model_dir: Path) -> tuple[str, ...]:
    from medseg.inference.model_card import read_card

    return read_card(model_dir / "model_card.json").class_names


def _dice(summary: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """{class: (model mean Dice, baseline mean Dice)} from the evaluation summary."""
    model, baseline = summary.get("model", {}), summary.get("baseline", {})
    return {name: (float(scores["dice"]["mean"]), float(baseline.get(name, {}).get("dice", {}).get("mean", math.nan)))
            for name, scores in model.items()}


def _per_scan(cases: Sequence[dict[str, Any]]) -> float | None:
    """Mean seconds per scan of the run that made the predictions (a rerun's are skipped-complete)."""
    from medseg.inference.batch_report import summarise

    made = [{**case, "status": "ok", "timings_s": case.get("previous_timings_s", case["timings_s"])}
            for case in cases if case["status"] in ("ok", "skipped-complete")]
    return summarise(made)["seconds_per_scan"]
