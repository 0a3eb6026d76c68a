"""Run a window plan: a scan and a network in, blended logits or probabilities out.

``run_plan`` is what the Predictor calls per scan (and per mirror pass); ``predict_logits`` is what
training's validation calls per batch. Both take a plan from ``medseg.windows.plans.choose_plan``, so
validation scores what inference will produce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn

from medseg.config import NetworkConfig
from medseg.networks.spec import NetworkGeometry
from medseg.networks.valid_padding import valid_sliding_window_inference
from medseg.windows.blend import WindowBlend, blend_windows
from medseg.windows.plans import DEFAULT_BUDGET_BYTES, WindowPlan, choose_plan, divisor
from medseg.windows.whole import VolumeLogits, segment_volume, whole_volume

Network = Callable[[torch.Tensor], torch.Tensor]
PlanResult = WindowBlend | VolumeLogits


def run_plan(
    image: torch.Tensor,
    network: Network,
    plan: WindowPlan,
    config: NetworkConfig,
    geometry: NetworkGeometry,
    *,
    temperature: float = 1.0,
    batch_size: int = 1,
    before_batch: Callable[[], None] | None = None,
    region: Sequence[slice] | None = None,
) -> PlanResult:
    """Cover ``image`` (C, I, J, K) with ``plan``; the result's ``.probabilities()`` / ``.logits()``: (K, I, J, K).

    Args:
        image: the preprocessed scan on the network grid (float32; CPU for the blended windows).
        network: (B, C, i, j, k) -> (B, K, i', j', k') logits, called under ``torch.inference_mode()``.
        plan: from ``choose_plan`` for this scan's shape.
        batch_size: windows per call (``"windows"`` and ``"monai"`` plans).
        before_batch: called before each network call (progress, cancellation).
        region: a box of ``image``'s voxels that is all the caller needs: a ``"segments"`` plan computes only
            the segments covering it (exactly; class 0 with certainty elsewhere, ``segment_volume``); the other
            plans cover the whole scan.
    """
    if plan.kind == "windows":
        return blend_windows(image, network, plan.window, overlap=plan.overlap, batch_size=batch_size,
                             temperature=temperature, crop=plan.crop, before_batch=before_batch)
    if plan.kind == "whole":
        return whole_volume(image, network, divisor(config, geometry), temperature=temperature,
                            before_batch=before_batch)
    if plan.kind == "segments":
        return segment_volume(image, network, plan.window, geometry.margin, geometry.align,
                              temperature=temperature, before_batch=before_batch, region=region)

    def watched(batch: torch.Tensor) -> torch.Tensor:
        if before_batch is not None:
            before_batch()
        return network(batch)

    with torch.inference_mode():
        batch = image[None].float()
        if geometry.margin == 0:
            logits = sliding_window_inference(batch, roi_size=plan.window, sw_batch_size=batch_size,
                                              predictor=watched, overlap=plan.overlap, mode="gaussian")
        else:
            logits = valid_sliding_window_inference(batch, watched, plan.window, geometry.margin, align=geometry.align,
                                                    overlap=plan.overlap, sw_batch_size=batch_size)
    return VolumeLogits(logits[0].float(), temperature)


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    config: NetworkConfig,
    geometry: NetworkGeometry,
    *,
    overlap: float,
    plan: str = "auto",
    batch_size: int = 1,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> torch.Tensor:
    """Logits (B, K, I, J, K) of whole volumes (B, C, I, J, K) by the plan ``plan`` (float32, on ``images``' device).

    The network runs on ``images``' device; the full-size sums and logits are kept on the CPU.
    """
    device = images.device

    def network(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.to(device)).float().cpu()

    results = []
    for image in images:
        chosen = choose_plan(plan, config, geometry, tuple(image.shape[1:]), overlap=overlap, budget_bytes=budget_bytes)
        result = run_plan(image.detach().cpu().float(), network, chosen, config, geometry, batch_size=batch_size)
        results.append(result.logits())
    return torch.stack(results).to(device)
