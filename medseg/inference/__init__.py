"""Inference: model folders, the Predictor (results on the source grid), clean-up, QC flags, calibration.

Public API:
    Predictor.from_model(model_dir, device="cpu", tta=False) -> Predictor; predictor.predict(volume) -> Prediction
    load_model_folder(model_dir) -> ModelFolder; export_model_folder(run_dir, model_dir, checkpoint="best") -> Path
    calibrate_model(model_dir, dataset_json, split_json) -> CalibrationResult
    keep_largest_component, remove_small_components, class_volumes_ml   label-map clean-up
    qc_flags, QCReference                                               triage flags against the training data
"""

from __future__ import annotations

from medseg.inference.model_folder import ModelFolder, export_model_folder, load_model_folder
from medseg.inference.postprocess import class_volumes_ml, keep_largest_component, remove_small_components
from medseg.inference.prediction import Prediction
from medseg.inference.predictor import Predictor
from medseg.inference.qc import QCReference, qc_flags

__all__ = [
    "ModelFolder",
    "Prediction",
    "Predictor",
    "QCReference",
    "class_volumes_ml",
    "export_model_folder",
    "keep_largest_component",
    "load_model_folder",
    "qc_flags",
    "remove_small_components",
]
