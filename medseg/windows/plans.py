"""Window plans by name: how a network covers a scan, chosen per model from its config and a memory budget.

Plans (``available_plans()``; ``"auto"`` picks one with ``auto_plan_name``):

* ``"windows"``: Gaussian-blended windows of the network's inference window at the config's overlap
  (MONAI's positions and weights; ``medseg.windows.blend``). For networks whose answer depends on the
  window's content: instance or group norm.
* ``"whole"``: one forward over the whole scan when its estimate fits the budget; otherwise the largest
  cubic-ish windows that fit (multiples of the network's divisor), overlapping by ``BORDER`` voxels only,
  enough to hide the zero-padded borders. For networks whose answer does not depend on where windows
  fall: batch norm with running averages (folded into the convolutions, ``medseg.networks.fusion``),
  and batch norm with each window's statistics where measured to give the same Dice (see ``AUTO_WHOLE``).
* ``"segments"``: valid-convolution networks (DeepMedic): the whole volume in one forward when it fits,
  else the largest aligned output segments that fit, without overlap (``medseg.windows.whole``).
* ``"monai"``: MONAI's own ``sliding_window_inference`` on logits (the reference the others are tested
  against).

The budget (``DEFAULT_BUDGET_BYTES``) bounds the whole plan's peak estimate (``medseg.windows.memory``):
scan, full-size outputs and one forward's working set; a smaller budget only makes windows smaller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks.spec import NetworkGeometry
from medseg.windows.memory import peak_bytes, working_bytes

# A safe default for any machine with 8 GB: peak estimate of the window runner (scan + outputs + one forward).
DEFAULT_BUDGET_BYTES = 6 << 30
# Voxels two large windows share ("whole" plan past the budget): enough to hide a window's zero-padded border.
BORDER = 16
# Same-size networks with per-window batch-norm statistics: "whole" by default only if a whole-volume pass gives
# the same answers as 96^3 windows. It does not on real scans: the shipped UNet with one whole-volume pass fell
# from brain Dice 0.74 to 0.61 (robex-t1 whole head, 840 -> 1,586 mL outside the brain) and from WM 0.57 to 0.37
# (skull-stripped) in scripts/brain_model_checks.py, though it scored the same on the synthetic sample. So they
# keep the windows their statistics were trained and checked on.
AUTO_WHOLE_WINDOW_STATISTICS = False


@dataclass(frozen=True)
class WindowPlan:
    """How one scan is covered.

    Attributes:
        kind: ``"windows"``, ``"whole"``, ``"segments"`` or ``"monai"``.
        window: same-size networks: the input window (``"whole"``: the padded volume when one forward);
            valid networks: the output segment.
        overlap: MONAI overlap fraction between windows (0 for one forward and for segments).
        crop: windows only over the foreground box (``"windows"``).
        estimated_bytes: peak estimate (``medseg.windows.memory.peak_bytes``).
        forwards: network calls for the scan.
    """

    kind: str
    window: tuple[int, int, int]
    overlap: float
    crop: bool
    estimated_bytes: int
    forwards: int


@dataclass(frozen=True)
class PlanRequest:
    """What a plan is chosen from."""

    config: NetworkConfig
    geometry: NetworkGeometry
    shape: tuple[int, int, int]
    overlap: float
    crop: bool
    budget_bytes: int


def divisor(config: NetworkConfig, geometry: NetworkGeometry) -> int:
    """Input sides of a same-size network must be multiples of this (a UNet's product of strides)."""
    if geometry.margin > 0:
        return geometry.align
    return math.prod(config.strides) if config.name in ("unet", "dynunet") else 1


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _count(size: int, roi: int, overlap: float) -> int:
    if roi >= size:
        return 1  # MONAI pads a volume smaller than the window up to it
    step = max(int(roi * (1.0 - overlap)), 1)
    return math.ceil((size - roi) / step) + 1


def window_count(shape: tuple[int, ...], window: tuple[int, ...], overlap: float) -> int:
    """Windows over a volume of ``shape``: MONAI ``sliding_window_inference``'s scan-interval rule."""
    return math.prod(_count(n, w, overlap) for n, w in zip(shape, window))


def _windows_plan(request: PlanRequest) -> WindowPlan:
    window = request.geometry.infer_window
    forwards = window_count(request.shape, window, request.overlap)
    work = working_bytes(request.config, window, request.geometry.margin)
    estimate = peak_bytes(request.shape, request.config.in_channels, request.config.out_channels, "windows", work)
    return WindowPlan("windows", window, request.overlap, request.crop, estimate, forwards)


def _monai_plan(request: PlanRequest) -> WindowPlan:
    plan = _windows_plan(request)  # valid networks: MONAI-stitched output windows with their real context
    return WindowPlan("monai", plan.window, plan.overlap, False, plan.estimated_bytes, plan.forwards)


def _whole_plan(request: PlanRequest) -> WindowPlan:
    config, shape = request.config, request.shape
    step = divisor(config, request.geometry)
    padded = tuple(_round_up(n, step) for n in shape)
    classes, channels = config.out_channels, config.in_channels
    one = peak_bytes(shape, channels, classes, "whole", working_bytes(config, padded))
    if one <= request.budget_bytes:
        return WindowPlan("whole", padded, 0.0, False, one, 1)
    # Shrink the longest side first until the windows fit: few, large windows, BORDER voxels of overlap.
    window = list(padded)
    while True:
        overlap = min(BORDER / min(window), 0.5)
        work = working_bytes(config, window)
        estimate = peak_bytes(shape, channels, classes, "windows", work)
        longest = max(range(3), key=lambda axis: window[axis])
        if estimate <= request.budget_bytes or window[longest] <= max(step, 2 * BORDER):
            break
        window[longest] = max(_round_up(window[longest] * 3 // 4, step), step)
    if estimate > request.budget_bytes:
        raise ConfigError(
            f"memory budget {request.budget_bytes / 2**30:.1f} GB: a scan of {list(shape)} voxels needs at least "
            f"{estimate / 2**30:.1f} GB with the smallest windows; raise the budget"
        )
    forwards = window_count(shape, window, overlap)
    return WindowPlan("windows", tuple(window), overlap, False, estimate, forwards)


def _segments_plan(request: PlanRequest) -> WindowPlan:
    config, geometry, shape = request.config, request.geometry, request.shape
    align, margin = geometry.align, geometry.margin
    segment = [_round_up(n, align) for n in shape]
    classes, channels = config.out_channels, config.in_channels
    while True:
        estimate = peak_bytes(shape, channels, classes, "segments", working_bytes(config, segment, margin))
        longest = max(range(3), key=lambda axis: segment[axis])
        minimum = max(geometry.infer_window[longest], align)
        if estimate <= request.budget_bytes or segment[longest] <= minimum:
            break
        segment[longest] = max(_round_up(segment[longest] * 3 // 4, align), minimum)
    if estimate > request.budget_bytes:
        raise ConfigError(
            f"memory budget {request.budget_bytes / 2**30:.1f} GB: a scan of {list(shape)} voxels needs at least "
            f"{estimate / 2**30:.1f} GB with segments of {segment}; raise the budget"
        )
    forwards = math.prod(-(-_round_up(n, align) // s) for n, s in zip(shape, segment))
    return WindowPlan("segments", tuple(segment), 0.0, False, estimate, forwards)


_PLANS: dict[str, Callable[[PlanRequest], WindowPlan]] = {
    "windows": _windows_plan,
    "whole": _whole_plan,
    "segments": _segments_plan,
    "monai": _monai_plan,
}


def available_plans() -> tuple[str, ...]:
    """Plan names a Predictor and the CLI take: ``"auto"`` and every registered plan."""
    return ("auto", *_PLANS)


def placement_invariant(config: NetworkConfig) -> bool:
    """True when the network's answer for a voxel does not depend on where windows fall (running batch norm)."""
    uses_batch_norm = config.name == "deepmedic" or config.norm == "batch"
    return uses_batch_norm and config.norm_statistics == "running"


def auto_plan_name(config: NetworkConfig, geometry: NetworkGeometry) -> str:
    """The plan ``"auto"`` means for a network (see the module docstring)."""
    if geometry.margin > 0:
        return "segments"
    if placement_invariant(config):
        return "whole"
    if config.norm == "batch" and config.norm_statistics == "window" and AUTO_WHOLE_WINDOW_STATISTICS:
        return "whole"
    return "windows"


def choose_plan(
    name: str,
    config: NetworkConfig,
    geometry: NetworkGeometry,
    shape: Sequence[int],
    *,
    overlap: float,
    crop: bool = False,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> WindowPlan:
    """The plan ``name`` (``"auto"``: ``auto_plan_name``) for a scan of ``shape`` (I, J, K) on the network grid.

    Raises:
        ConfigError: an unknown plan, a plan the network cannot run (windows for a valid network,
            segments for a same-size one), or a budget too small for any window.
    """
    if name not in available_plans():
        raise ConfigError(f"window plan: {name!r} is not one of {', '.join(available_plans())}")
    if budget_bytes <= 0:
        raise ConfigError(f"memory budget: must be positive, got {budget_bytes} bytes")
    if name == "auto":
        name = auto_plan_name(config, geometry)
    valid = geometry.margin > 0
    if name != "monai" and valid != (name == "segments"):
        what = "valid-convolution" if valid else "same-size"
        raise ConfigError(f"window plan {name!r} does not fit the {what} network {config.name!r}; use 'auto'")
    request = PlanRequest(config, geometry, (shape[0], shape[1], shape[2]), overlap, crop, budget_bytes)
    return _PLANS[name](request)
