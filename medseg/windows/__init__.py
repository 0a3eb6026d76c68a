"""The one window runner, below training and inference: how a network covers a whole scan.

Training's validation (``medseg.training.validation``) and the Predictor (``medseg.inference``) both
choose a plan here and run it here, so validation scores what inference produces.

Public API:
    choose_plan(name, config, geometry, shape, overlap=..., budget_bytes=...) -> WindowPlan
    available_plans() -> tuple[str, ...]            "auto", "windows", "whole", "segments", "monai"
    run_plan(image, network, plan, config, geometry, ...) -> WindowBlend | VolumeLogits   (.probabilities(), .logits())
    predict_logits(model, images, config, geometry, overlap=...) -> (B, K, I, J, K) logits (validation)
    blend_windows, foreground_box, whole_volume, segment_volume    the plans' mechanisms
"""

from __future__ import annotations

from medseg.windows.blend import WindowBlend, blend_windows, foreground_box, sliding_window_probabilities
from medseg.windows.plans import (
    DEFAULT_BUDGET_BYTES,
    WindowPlan,
    auto_plan_name,
    available_plans,
    choose_plan,
    placement_invariant,
)
from medseg.windows.run import predict_logits, run_plan
from medseg.windows.whole import VolumeLogits, segment_volume, whole_volume

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "VolumeLogits",
    "WindowBlend",
    "WindowPlan",
    "auto_plan_name",
    "available_plans",
    "blend_windows",
    "choose_plan",
    "foreground_box",
    "placement_invariant",
    "predict_logits",
    "run_plan",
    "segment_volume",
    "sliding_window_probabilities",
    "whole_volume",
]
