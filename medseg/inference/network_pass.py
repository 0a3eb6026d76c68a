"""One network's pass over a scan: preprocess, run its window plan (with mirror TTA), probabilities on the scan's grid.

``network_probabilities(predictor, volume, ...)`` is steps 1-4 of ``medseg.inference.predictor`` for one network
(the Predictor's own, an ensemble member's or its outline member's); the Predictor combines the results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from medseg.errors import Cancelled
from medseg.inference.finish import first_argmax, to_source_grid
from medseg.inference.preprocess import box_on_network_grid, preprocess_volume
from medseg.inference.qc_content import pass_disagreement
from medseg.types import Volume, spacing_from_affine

if TYPE_CHECKING:
    from medseg.inference.predictor import Predictor

CancelCallback = Callable[[], bool]
# Share of the progress bar per stage: preprocessing, network passes, the rest.
PREPROCESS_SHARE, NETWORK_SHARE = 0.05, 0.85
SOURCE_SHARE = PREPROCESS_SHARE + NETWORK_SHARE + 0.05  # ... and the probabilities on the scan's grid


def check_cancel(cancel: CancelCallback | None) -> None:
    """Raise ``Cancelled`` when ``cancel()`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("inference cancelled")


def network_probabilities(
    predictor: Predictor, volume: Volume, timings: dict[str, float], cancel: CancelCallback | None,
    report: Callable[[float], None], region: tuple[slice, ...] | None = None, background_only: bool = False,
) -> tuple[np.ndarray, float]:
    """``predictor``'s network's calibrated probabilities (C, I, J, K) on ``volume``'s grid, and its TTA disagreement.

    Adds its stages' seconds to ``timings`` (``"preprocess"``, ``"network"``, ``"resample"``); ``report``
    gets the progress of this part of the work, from 0 to ``SOURCE_SHARE``. The disagreement is NaN without TTA.
    ``region``: a box of ``volume``'s voxels, all the caller needs (an outline member: ``brain_region``);
    a ``"segments"`` plan then runs only there and gives class 0 with certainty elsewhere (``run_plan``).
    ``background_only``: only class 0 and the sum of the others are resampled to ``volume``'s grid (then
    (2, I, J, K)): all an outline member's trim reads, at half the cost of four classes.
    """
    mark = time.perf_counter()
    with torch.inference_mode():
        image = preprocess_volume(volume, predictor.config)
    grid_region = None if region is None else box_on_network_grid(
        region, np.asarray(volume.affine), np.asarray(image.affine), tuple(image.shape[1:]))
    timings["preprocess"] += time.perf_counter() - mark
    report(PREPROCESS_SHARE)

    flips = predictor.tta_flips
    plan = predictor.plan_for(tuple(image.shape[1:]))
    calls_per_pass = math.ceil(plan.forwards / predictor.sw_batch_size) if plan.kind in ("windows", "monai") \
        else plan.forwards
    total = max(calls_per_pass * len(flips), 1)
    done = [0]

    def tick() -> None:
        done[0] += 1
        report(PREPROCESS_SHARE + NETWORK_SHARE * min(done[0] / total, 1.0))

    mark = time.perf_counter()
    probabilities = None
    pass_labels: list[torch.Tensor] = []  # argmax of each TTA pass, for the disagreement QC flag
    grid_affine = image.affine
    for index, flip in enumerate(flips):
        result = predictor.run_pass(image, plan, flip, tick, cancel, predictor.temperature, grid_region)
        if index == len(flips) - 1:
            del image  # the preprocessed scan goes before the full-size probabilities are made
        soft = result.probabilities()
        if flip:
            soft = torch.flip(soft, tuple(d - 1 for d in flip))  # (B, C, ...) dims -> (C, ...) dims
        del result
        with torch.inference_mode():
            if len(flips) > 1:
                pass_labels.append(first_argmax(soft))
            if probabilities is None:
                probabilities = soft
            else:
                probabilities += soft
        del soft
    disagreement = math.nan
    if len(flips) > 1:
        with torch.inference_mode():
            probabilities /= len(flips)
            final_labels = first_argmax(probabilities)
            grid_spacing = spacing_from_affine(np.asarray(grid_affine))
            structure = predictor.clean_up.apply(final_labels.numpy(), grid_spacing) > 0
            disagreement = pass_disagreement(pass_labels, final_labels, structure)
        del pass_labels
    probabilities = probabilities.cpu()
    timings["network"] += time.perf_counter() - mark
    check_cancel(cancel)

    mark = time.perf_counter()
    with torch.inference_mode():
        if background_only:  # background and all tissue: still a distribution, renormalised as one
            probabilities = torch.stack((probabilities[0], 1.0 - probabilities[0]))
        source_probabilities = to_source_grid(probabilities, grid_affine, volume)
    timings["resample"] += time.perf_counter() - mark
    report(SOURCE_SHARE)
    return source_probabilities, disagreement

