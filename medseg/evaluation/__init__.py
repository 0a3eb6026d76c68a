"""Evaluation: metrics (Dice, HD95, surface Dice, volume), the majority-class baseline,
calibration and uncertainty quality, and reports with tables and figures.

Public API:
    score_labels(prediction, truth, spacing, classes, tolerance_mm) -> {label: ClassScores}
    score_baseline(truth, spacing, classes, tolerance_mm, label) -> {label: ClassScores}
    expected_calibration_error(probabilities, labels, n_bins) -> float
    fit_temperature(logits, labels) -> float; save_calibration / load_calibration
    predictive_entropy(probabilities) -> (I, J, K); error_auroc; volume_crps
    evaluate_folders(pred_dir, truth_dir, out_dir, class_names, tolerance_mm, ...) -> EvaluationResult
"""

from __future__ import annotations

from medseg.evaluation.baseline import baseline_prediction, majority_class, score_baseline
from medseg.evaluation.calibration import (
    classwise_ece,
    expected_calibration_error,
    fit_temperature,
    load_calibration,
    reliability,
    save_calibration,
    softmax_with_temperature,
)
from medseg.evaluation.metrics import METRIC_NAMES, ClassScores, score_labels, score_masks
from medseg.evaluation.report import EvaluationResult, evaluate_folders
from medseg.evaluation.uncertainty import error_auroc, gaussian_crps, predictive_entropy, volume_crps

__all__ = [
    "METRIC_NAMES",
    "ClassScores",
    "EvaluationResult",
    "baseline_prediction",
    "classwise_ece",
    "error_auroc",
    "evaluate_folders",
    "expected_calibration_error",
    "fit_temperature",
    "gaussian_crps",
    "load_calibration",
    "majority_class",
    "predictive_entropy",
    "reliability",
    "save_calibration",
    "score_baseline",
    "score_labels",
    "score_masks",
    "softmax_with_temperature",
    "volume_crps",
]
