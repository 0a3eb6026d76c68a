"""Evaluate a folder of predictions against a folder of references; write tables and figures.

Outputs in ``out_dir`` (each written atomically):

* ``metrics.csv``: one row per (case, class, method), method ``model`` or ``baseline``;
* ``metrics.json``: settings, rows, summary (mean, SD, median, n per metric) and, with
  probabilities, calibration and uncertainty quality;
* ``summary.md``: the Markdown table (model beside the majority-class baseline) and notes;
* ``dice_boxplot.png``, ``overlays.png`` (best, median and worst case by mean Dice) and,
  with probabilities, ``reliability.png``.

File layouts are those of ``medseg.evaluation.cases``; metric conventions those of
``medseg.evaluation.metrics``. Every prediction (and probability map, and image) must
lie on its reference's grid; a mismatch is an ``InputError`` naming both files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import InputError, OutputError
from medseg.evaluation.baseline import score_baseline
from medseg.evaluation.calibration import DEFAULT_MAX_SAMPLES, classwise_ece, reliability
from medseg.evaluation.cases import CaseFiles, match_cases
from medseg.evaluation.figures import OverlayCase, dice_boxplot, overlay_montage, reliability_diagram
from medseg.evaluation.metrics import score_labels, voxel_volume_ml
from medseg.evaluation.summary import (
    csv_text,
    describe,
    json_text,
    markdown_table,
    summarise,
    uncertainty_markdown,
)
from medseg.evaluation.uncertainty import error_auroc, predictive_entropy, volume_crps
from medseg.io.atomic import atomic_write_text
from medseg.io.read import read_labels, read_scan
from medseg.io.volume_checks import grid_difference
from medseg.types import LabelVolume, SourceInfo, Volume

LOGGER = logging.getLogger(__name__)
PROBABILITY_TOLERANCE = 1e-2


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate_folders`` computed and wrote.

    Attributes:
        case_ids: the evaluated cases, sorted.
        class_names: names of labels 0..N (only 1..N are scored).
        rows: one dict per (case, class, method) with the metrics of ``metrics.METRIC_NAMES``.
        summary: ``{method: {class: {metric: {mean, sd, median, n, n_total}}}}``.
        baseline_label: the majority class predicted everywhere by the baseline.
        uncertainty: calibration and uncertainty quality (None without probabilities).
        table: the Markdown summary table.
        files: what was written, by kind (``csv``, ``json``, ``markdown``, ``boxplot``...).
    """

    case_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    baseline_label: int
    uncertainty: dict[str, Any] | None
    table: str
    files: dict[str, Path] = field(default_factory=dict)


def _reference(truth: LabelVolume, path: Path) -> Volume:
    """The reference label map as a Volume, so ``read_labels`` can check grids against it."""
    return Volume(array=truth.array[np.newaxis], affine=truth.affine, channel_names=("labels",),
                  source=SourceInfo(path=str(path), format="labels"))


def _check_values(path: Path, labels: np.ndarray, class_names: Sequence[str]) -> None:
    high = int(labels.max()) if labels.size else 0
    if high >= len(class_names):
        raise InputError(path, f"label value {high} but only {len(class_names)} classes ({', '.join(class_names)})",
                         "give the class names of this data set (--labels dataset.json)")


def _default_class_names(cases: Sequence[CaseFiles]) -> tuple[str, ...]:
    high = max(int(read_labels(case.truth).array.max()) for case in cases)
    return ("background",) + tuple(f"class_{c}" for c in range(1, max(high, 1) + 1))


def _read_probabilities(case: CaseFiles, reference: Volume, class_names: Sequence[str]) -> np.ndarray:
    """(C, I, J, K) float32 probabilities, checked against the reference grid and for summing to 1."""
    path = case.probabilities
    volume = read_scan(path, modalities=tuple(class_names))
    difference = grid_difference(reference.affine, reference.spatial_shape, volume.affine, volume.spatial_shape)
    if difference:
        raise InputError(path, f"the probabilities' grid does not match the reference {case.truth} ({difference})",
                         "write probabilities on the reference's grid")
    values = np.asarray(volume.array, dtype=np.float32)
    total = values.sum(axis=0)
    if values.min() < -PROBABILITY_TOLERANCE or values.max() > 1 + PROBABILITY_TOLERANCE or \
            np.abs(total - 1).max() > PROBABILITY_TOLERANCE:
        raise InputError(path, f"not class probabilities (values {values.min():.3g}..{values.max():.3g}, "
                         f"sums over classes {total.min():.3g}..{total.max():.3g})",
                         "write softmax outputs (one channel per class, summing to 1), not logits")
    return values


@dataclass
class _Pool:
    """Sampled voxels of every case, for pooled calibration and AUROC."""

    probabilities: list[np.ndarray] = field(default_factory=list)  # each (n, C)
    labels: list[np.ndarray] = field(default_factory=list)
    errors: list[np.ndarray] = field(default_factory=list)
    entropy: list[np.ndarray] = field(default_factory=list)
    per_case: list[dict[str, Any]] = field(default_factory=list)


def _uncertainty_case(case: CaseFiles, probabilities: np.ndarray, prediction: np.ndarray, truth: LabelVolume,
                      classes: Sequence[int], pool: _Pool, n_samples: int, seed: int) -> dict[int, float]:
    """Per-case AUROC into ``pool``, sampled voxels into ``pool``; returns the volume CRPS per class."""
    entropy = predictive_entropy(probabilities)
    errors = prediction != truth.array
    pool.per_case.append({"case_id": case.case_id, "error_auroc": error_auroc(entropy, errors)})
    flat = probabilities.reshape(probabilities.shape[0], -1)
    count = flat.shape[1]
    chosen = np.random.default_rng(seed).choice(count, size=min(n_samples, count), replace=False)
    pool.probabilities.append(flat[:, chosen].T)
    pool.labels.append(truth.array.reshape(-1)[chosen])
    pool.errors.append(errors.reshape(-1)[chosen])
    pool.entropy.append(entropy.reshape(-1)[chosen])
    return volume_crps(probabilities, truth.array, voxel_volume_ml(truth.spacing), classes)


def _pooled_uncertainty(pool: _Pool, rows: Sequence[dict[str, Any]], class_names: Sequence[str],
                        n_bins: int) -> tuple[dict[str, Any], Any]:
    samples = np.concatenate(pool.probabilities)
    labels = np.concatenate(pool.labels)
    diagram = reliability(samples, labels, n_bins)
    per_class = classwise_ece(samples, labels, n_bins)
    crps = {name: describe([r["volume_crps_ml"] for r in rows if r["class"] == name and r["method"] == "model"])
            for name in class_names[1:]}
    content = {
        "n_bins": n_bins,
        "n_samples": int(labels.size),
        "ece": diagram.ece,
        "classwise_ece": {class_names[c]: v for c, v in per_class.items()},
        "classwise_ece_mean": float(np.mean(list(per_class.values()))),
        "error_auroc": error_auroc(np.concatenate(pool.entropy), np.concatenate(pool.errors)),
        "per_case": pool.per_case,
        "volume_crps_ml": crps,
        "reliability": {"edges": diagram.edges, "confidence": diagram.confidence,
                        "accuracy": diagram.accuracy, "counts": diagram.counts},
    }
    return content, diagram


def _rows(case_id: str, scores: dict, class_names: Sequence[str], method: str) -> list[dict[str, Any]]:
    return [{"case_id": case_id, "class": class_names[c], "label": c, "method": method, **s.as_dict()}
            for c, s in scores.items()]


def evaluate_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    out_dir: str | Path,
    class_names: Sequence[str] | None = None,
    tolerance_mm: float = 2.0,
    probabilities_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
    *,
    n_bins: int = 15,
    max_calibration_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> EvaluationResult:
    """Score every case, model and majority-class baseline, and write the report to ``out_dir``.

    Args:
        pred_dir: predictions, ``CASE.nii.gz`` or ``CASE/seg.nii.gz``.
        truth_dir: references, ``CASE.nii.gz``.
        out_dir: the report folder (created).
        class_names: names of labels 0..N; default ``background, class_1..`` up to the largest
            reference label.
        tolerance_mm: the surface-Dice tolerance, mm.
        probabilities_dir: (I, J, K, C) probability maps (see ``cases``); None looks for
            ``PRED/CASE/probabilities.nii.gz``.
        images_dir: scans for the overlays (``CASE.nii.gz`` or ``CASE_0000.nii.gz``).
        n_bins: reliability bins.
        max_calibration_samples: voxels pooled over all cases for ECE and pooled AUROC.
        seed: the voxel sampling seed.

    Raises:
        InputError: missing cases, unreadable files, a prediction or probability map off its
            reference's grid, or labels beyond ``class_names``.
        OutputError: the report cannot be written.
    """
    cases = match_cases(pred_dir, truth_dir, images_dir, probabilities_dir)
    names = tuple(class_names) if class_names else _default_class_names(cases)
    if len(names) < 2:
        raise InputError(truth_dir, f"class names {names} hold no foreground class", "give background and 1..N")
    classes = list(range(1, len(names)))
    with_probabilities = all(case.probabilities is not None for case in cases)
    if not with_probabilities and any(case.probabilities is not None for case in cases):
        LOGGER.warning("probabilities exist for some cases only: calibration is not evaluated")
    pool = _Pool()
    rows: list[dict[str, Any]] = []
    truth_counts: list[np.ndarray] = []
    for index, case in enumerate(cases):
        truth = read_labels(case.truth)
        _check_values(case.truth, truth.array, names)
        reference = _reference(truth, case.truth)
        prediction = read_labels(case.prediction, reference).array
        _check_values(case.prediction, prediction, names)
        model_rows = _rows(case.case_id, score_labels(prediction, truth.array, truth.spacing, classes, tolerance_mm),
                           names, "model")
        if with_probabilities:
            probabilities = _read_probabilities(case, reference, names)
            crps = _uncertainty_case(case, probabilities, prediction, truth, classes, pool,
                                     max(1, max_calibration_samples // len(cases)), seed + index)
            for row in model_rows:
                row["volume_crps_ml"] = crps[row["label"]]
        rows.extend(model_rows)
        truth_counts.append(np.bincount(truth.array.ravel(), minlength=len(names)))
    baseline_label = int(np.argmax(np.sum(truth_counts, axis=0)))  # majority_class, from the counts
    for case in cases:
        truth = read_labels(case.truth)
        rows.extend(_rows(case.case_id, score_baseline(truth.array, truth.spacing, classes, tolerance_mm,
                                                       baseline_label), names, "baseline"))
    summary = summarise(rows, names[1:])
    uncertainty, diagram = _pooled_uncertainty(pool, rows, names, n_bins) if with_probabilities else (None, None)
    table = markdown_table(summary, names[1:])
    files = _write_report(Path(out_dir), cases, names, rows, summary, uncertainty, diagram, table,
                          tolerance_mm=tolerance_mm, baseline_label=baseline_label)
    return EvaluationResult(tuple(c.case_id for c in cases), names, tuple(rows), summary, baseline_label,
                            uncertainty, table, files)


def _overlay_cases(cases: Sequence[CaseFiles], rows: Sequence[dict[str, Any]]) -> list[tuple[str, CaseFiles, float]]:
    """(role, case, mean Dice) for the best, median and worst case by mean foreground Dice."""
    means = []
    for case in cases:
        dice = [r["dice"] for r in rows if r["case_id"] == case.case_id and r["method"] == "model"]
        means.append(float(np.mean(dice)))
    order = np.argsort(means, kind="stable")[::-1]  # best first
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    chosen, seen = [], set()
    for role, index in picks:
        if index not in seen:
            seen.add(index)
            chosen.append((role, cases[index], means[index]))
    return chosen


def _overlay_scan(path: Path) -> Volume:
    """The scan behind an overlay; a 4D NIfTI of every modality is read as channels (the first is drawn)."""
    import nibabel as nib

    shape = nib.load(path).shape if path.name.lower().endswith((".nii", ".nii.gz")) else ()
    channels = shape[3] if len(shape) == 4 else 1
    return read_scan(path, modalities=tuple(f"channel {i}" for i in range(channels)) if channels > 1 else ())


def _overlay(role: str, case: CaseFiles, dice: float) -> OverlayCase:
    truth = read_labels(case.truth)
    prediction = read_labels(case.prediction, _reference(truth, case.truth)).array
    image = None
    if case.image is not None:
        volume = _overlay_scan(case.image)
        difference = grid_difference(truth.affine, truth.array.shape, volume.affine, volume.spatial_shape)
        if difference:
            raise InputError(case.image, f"the image's grid does not match its reference {case.truth} ({difference})",
                             "give the images the labels were drawn on")
        image = volume.array[0]
    return OverlayCase(f"{role}: {case.case_id} (Dice {dice:.3f})", truth.array, prediction, truth.affine, image)


def _write_report(out_dir: Path, cases: Sequence[CaseFiles], names: Sequence[str], rows: list[dict[str, Any]],
                  summary: dict[str, Any], uncertainty: dict[str, Any] | None, diagram: Any, table: str, *,
                  tolerance_mm: float, baseline_label: int) -> dict[str, Path]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out_dir}: cannot create the report folder ({error.strerror})") from error
    files = {"csv": atomic_write_text(out_dir / "metrics.csv", csv_text(rows))}
    files["boxplot"] = dice_boxplot(rows, names[1:], out_dir / "dice_boxplot.png")
    overlays = [_overlay(role, case, dice) for role, case, dice in _overlay_cases(cases, rows)]
    files["overlays"] = overlay_montage(overlays, names, out_dir / "overlays.png")
    if diagram is not None:
        files["reliability"] = reliability_diagram(diagram, out_dir / "reliability.png")
    settings = {"tolerance_mm": tolerance_mm, "class_names": list(names), "baseline_label": baseline_label,
                "n_cases": len(cases)}
    files["json"] = out_dir / "metrics.json"
    atomic_write_text(files["json"], json_text({
        "settings": settings, "summary": summary, "uncertainty": uncertainty, "cases": rows,
        "files": {kind: path.name for kind, path in files.items()},
    }))
    document = [
        "# Evaluation", "",
        f"{len(cases)} case(s); surface Dice tolerance {tolerance_mm:g} mm; baseline: "
        f"'{names[baseline_label]}' (the majority class) everywhere. Mean ± SD skip undefined values "
        "(n = used/total).", "", table,
    ]
    if uncertainty is not None:
        document += ["## Calibration and uncertainty", "", uncertainty_markdown(uncertainty, names[1:]),
                     "![Reliability diagram](reliability.png)", ""]
    document += ["## Figures", "", "![Dice per class](dice_boxplot.png)", "",
                 "![Best, median and worst case](overlays.png)", ""]
    files["markdown"] = atomic_write_text(out_dir / "summary.md", "\n".join(document))
    return files
