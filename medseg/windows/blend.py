"""Gaussian-blended sliding windows of a same-size network: foreground crop, streamed windows, compact sums.

``sliding_window_probabilities`` computes what ``softmax(sliding_window_inference(...) / T)`` gives
(MONAI's window positions and Gaussian weights), with three changes measured in ``benchmarks/``:

* the windows only cover the foreground box (``foreground_box``: voxels above a low intensity
  threshold, plus a margin); outside it every voxel gets the network's answer on a constant
  background window (computed once), which is what a window of pure background gives anyway;
* window logits are weighted and added as they come into an accumulator of the box only (float16
  once it would pass ``COMPACT_ELEMENTS`` values, float32 below), then divided by the summed
  weights and turned into probabilities a slab at a time (no full-size temporaries);
* the network may be any callable on (B, C, I, J, K) tensors, e.g. an onnxruntime session
  (``medseg.inference.engine``).

Inside the box the blend is MONAI's (Gaussian-weighted logits); the benchmarks report the Dice
agreement with MONAI's path on whole volumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data.utils import compute_importance_map

Network = Callable[[torch.Tensor], torch.Tensor]
# Foreground: any channel differing from the background (the median of the volume's outer faces) by more
# than FOREGROUND_FRACTION of its 1st..99th percentile range. Works for MR (0 around the head, also after a
# z-score over non-zero voxels, where tissue lies on both sides of 0) and CT (air around the body).
FOREGROUND_FRACTION = 0.1
# Crop only when the box saves at least this share of the voxels.
MIN_SAVING = 0.1
# Accumulators with more values than this (128 MiB in float32) are kept in float16 (relative rounding
# ~5e-4 of the summed logits; the masks still agree with MONAI's at Dice > 0.999, see benchmarks/).
COMPACT_ELEMENTS = 1 << 25


def foreground_box(
    image: torch.Tensor, margin: int, fraction: float = FOREGROUND_FRACTION
) -> tuple[slice, slice, slice] | None:
    """Bounding box of the voxels that differ from the background, grown by ``margin`` voxels.

    Args:
        image: (C, I, J, K) preprocessed scan.
        margin: voxels added on each side (clipped to the volume).
        fraction: a voxel is foreground where ``|value - background| > fraction * (p99 - p1)`` in any
            channel (background: ``border_values``; percentiles of a subsample).

    Returns:
        Three slices, an empty box ``(slice(0, 0),) * 3`` when nothing is above the threshold, or None
        when the box would not save ``MIN_SAVING`` of the voxels (no crop worth doing).
    """
    values = image.detach().float().cpu()
    background = border_values(values)
    mask = torch.zeros(values.shape[1:], dtype=torch.bool)
    for channel, level in zip(values, background):
        sample = channel[::4, ::4, ::4].reshape(-1).numpy()
        low, high = np.percentile(sample, [1.0, 99.0])
        if high <= low:  # foreground under 1 % of the voxels: the full range
            low, high = float(channel.min()), float(channel.max())
        if high <= low:
            continue  # a constant channel holds no foreground
        mask |= (channel - level).abs_() > fraction * (high - low)
    if not bool(mask.any()):
        return (slice(0, 0),) * 3
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = torch.nonzero(mask.any(dim=others[1]).any(dim=others[0])).reshape(-1)
        start = max(int(hits[0]) - margin, 0)
        stop = min(int(hits[-1]) + 1 + margin, mask.shape[axis])
        box.append(slice(start, stop))
    kept = math.prod(s.stop - s.start for s in box)
    if kept > (1.0 - MIN_SAVING) * mask.numel():
        return None
    return tuple(box)


def grow_box(box: Sequence[slice], shape: Sequence[int], window: Sequence[int]) -> tuple[slice, slice, slice]:
    """Grow each side of ``box`` that is shorter than the window to the window (or the whole axis), centred."""
    grown = []
    for where, size, roi in zip(box, shape, window):
        length = where.stop - where.start
        if length >= roi or length >= size:
            grown.append(where)
            continue
        target = min(roi, size)
        start = max(min(where.start - (target - length) // 2, size - target), 0)
        grown.append(slice(start, start + target))
    return tuple(grown)


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis by MONAI's rule (``dense_patch_slices``); ``size >= roi``."""
    if roi >= size:
        return [0]
    step = max(int(roi * (1.0 - overlap)), 1)
    count = math.ceil((size - roi) / step) + 1
    return sorted({min(i * step, size - roi) for i in range(count)})


def constant_window_probabilities(
    network: Network, values: torch.Tensor, window: Sequence[int], temperature: float
) -> torch.Tensor:
    """Softmax(logits / T) (K,) at the centre of a window filled with ``values`` (C,) per channel."""
    patch = values.reshape(1, -1, 1, 1, 1).expand(1, values.numel(), *window).contiguous()
    logits = network(patch)[0].float()
    centre = logits[(slice(None), *(s // 2 for s in logits.shape[1:]))]
    return torch.softmax(centre / temperature, dim=0)


def border_values(image: torch.Tensor) -> torch.Tensor:
    """Per-channel median (C,) of the voxels on the six outer faces of ``image`` (C, I, J, K): the background."""
    faces = [image[:, index].reshape(image.shape[0], -1) for index in (0, -1)]
    faces += [image[:, :, index].reshape(image.shape[0], -1) for index in (0, -1)]
    faces += [image[:, :, :, index].reshape(image.shape[0], -1) for index in (0, -1)]
    return torch.cat(faces, dim=1).float().median(dim=1).values


class SlabSums:
    """A (C, I, J, K) running sum kept as blocks of ``planes`` along I, so that it can be freed block by block.

    Turning the sums of a 512x512x1000 CT into probabilities then never holds all the sums and all
    the probabilities at once.
    """

    def __init__(self, channels: int, shape: Sequence[int], dtype: torch.dtype, planes: int = 8) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.starts = list(range(0, self.shape[0], planes))
        self.blocks: list[torch.Tensor | None] = [
            torch.zeros((channels, min(planes, self.shape[0] - a), *self.shape[1:]), dtype=dtype) for a in self.starts
        ]
        self.planes = planes

    def add(self, where: Sequence[slice], values: torch.Tensor) -> None:
        """Add ``values`` (C, w1, w2, w3) at ``where`` (three slices of the (I, J, K) grid)."""
        first, last = where[0].start // self.planes, (where[0].stop - 1) // self.planes
        for index in range(first, last + 1):
            a = self.starts[index]
            lo, hi = max(where[0].start, a), min(where[0].stop, a + self.planes)
            block = self.blocks[index]
            part = values[:, lo - where[0].start : hi - where[0].start]
            block[:, lo - a : hi - a, where[1], where[2]] += part.to(self.dtype)

    def take(self, index: int) -> tuple[int, torch.Tensor]:
        """The first plane and the block ``index``, released from this object."""
        block = self.blocks[index]
        self.blocks[index] = None
        return self.starts[index], block


@dataclass(eq=False)
class WindowBlend:
    """Blended window logits of a scan, before they become probabilities (``probabilities()``).

    Attributes:
        summed: Gaussian-weighted logit sums (K, I, J, K) over ``box`` plus ``padding`` (float16 or float32).
        weights: the summed weights (1, I, J, K) there.
        box: where the windows ran, in the scan.
        shape: the scan's (I, J, K).
        fill: (K,) probabilities outside ``box`` (None when the box is the whole scan).
        temperature: softmax(logits / T).
    """

    summed: SlabSums | None
    weights: SlabSums | None
    padding: tuple[slice, slice, slice]
    box: tuple[slice, slice, slice]
    shape: tuple[int, int, int]
    fill: torch.Tensor | None
    temperature: float

    def logits(self) -> torch.Tensor:
        """(K, I, J, K) float32 blended logits (no temperature; outside ``box``: log ``fill``); frees the sums."""
        self.temperature = 1.0
        if self.fill is not None or self.summed is None:
            # Outside the box only probabilities exist: their log is a logit up to a per-voxel constant.
            return torch.log(self.probabilities().clamp_min(1e-12))
        summed, weights, shape = self.summed, self.weights, self.shape
        self.summed = self.weights = None
        result = torch.empty((summed.blocks[0].shape[0], *shape), dtype=torch.float32)
        rows, cols, depth = self.padding
        for index in range(len(summed.blocks)):
            start, block = summed.take(index)
            _, weight = weights.take(index)
            lo, hi = max(start, rows.start), min(start + block.shape[1], rows.stop)
            if hi > lo:
                part = (slice(None), slice(lo - start, hi - start), cols, depth)
                sums, total = block[part].float(), weight[part].float().clamp_min(1e-12)
                result[:, lo - rows.start : hi - rows.start] = sums / total
        return result

    def probabilities(self) -> torch.Tensor:
        """(K, I, J, K) float32 probabilities summing to 1 over classes; frees the sums."""
        summed, weights, shape = self.summed, self.weights, self.shape
        self.summed = self.weights = None
        with torch.inference_mode():
            if summed is None:
                return self.fill.reshape(-1, 1, 1, 1).expand(-1, *shape).contiguous()
            # torch.empty commits pages only as they are written: the probabilities grow while the sums are freed.
            result = torch.empty((summed.blocks[0].shape[0], *shape), dtype=torch.float32)
            if self.fill is not None:
                result[:] = self.fill.reshape(-1, 1, 1, 1)
            inner = result[(slice(None), *self.box)]
            rows, cols, depth = self.padding
            for index in range(len(summed.blocks)):
                start, block = summed.take(index)
                _, weight = weights.take(index)
                lo, hi = max(start, rows.start), min(start + block.shape[1], rows.stop)
                if hi > lo:
                    part = (slice(None), slice(lo - start, hi - start), cols, depth)
                    logits = block[part].float() / weight[part].float().clamp_min(1e-12)
                    inner[:, lo - rows.start : hi - rows.start] = torch.softmax(logits / self.temperature, dim=0)
                del block, weight
            del summed, weights
        return result


def blend_windows(
    image: torch.Tensor,
    network: Network,
    window: Sequence[int],
    *,
    overlap: float = 0.25,
    batch_size: int = 1,
    temperature: float = 1.0,
    crop: bool = True,
    margin: int = 16,
    before_batch: Callable[[], None] | None = None,
    accumulate_dtype: torch.dtype | None = None,
) -> WindowBlend:
    """Run the windows of a whole scan and blend their logits (see ``sliding_window_probabilities``).

    The result holds no reference to ``image``: a caller may free the scan before ``probabilities()``
    allocates the full-size output.
    """
    shape = tuple(image.shape[1:])
    box = foreground_box(image, margin) if crop else None
    with torch.inference_mode():
        fill = None
        if box is not None:
            fill = constant_window_probabilities(network, border_values(image), window, temperature)
        if box is None:
            box = tuple(slice(0, n) for n in shape)
        if any(s.stop <= s.start for s in box):
            return WindowBlend(None, None, box, box, shape, fill, temperature)
        box = grow_box(box, shape, window)
        region = image[(slice(None), *box)].float()
        region, padding = _pad_to_window(region, window)
        summed, weights = _blend(region, network, window, overlap, batch_size, before_batch, accumulate_dtype)
    return WindowBlend(summed, weights, padding, box, shape, fill, temperature)


def sliding_window_probabilities(
    image: torch.Tensor,
    network: Network,
    window: Sequence[int],
    *,
    overlap: float = 0.25,
    batch_size: int = 1,
    temperature: float = 1.0,
    crop: bool = True,
    margin: int = 16,
    before_batch: Callable[[], None] | None = None,
    accumulate_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Gaussian-blended sliding-window class probabilities of a whole scan.

    Args:
        image: (C, I, J, K) preprocessed scan (float32).
        network: (B, C, w1, w2, w3) -> (B, K, w1, w2, w3) logits; called under ``torch.inference_mode()``.
        window: window size (3 sides).
        overlap: MONAI's overlap fraction.
        batch_size: windows per network call.
        temperature: softmax(logits / T).
        crop: run windows only over ``foreground_box(image, margin)``.
        margin: voxels of background kept around the foreground.
        before_batch: called before each network call (progress, cancellation).
        accumulate_dtype: dtype of the running weighted sums (default: float16 above ``COMPACT_ELEMENTS``
            values, else float32).

    Returns:
        (K, I, J, K) float32 probabilities summing to 1 over classes.
    """
    return blend_windows(
        image, network, window, overlap=overlap, batch_size=batch_size, temperature=temperature, crop=crop,
        margin=margin, before_batch=before_batch, accumulate_dtype=accumulate_dtype,
    ).probabilities()


def _pad_to_window(region: torch.Tensor, window: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad (C, I, J, K) symmetrically up to the window where smaller (as MONAI does); slices undo it."""
    pads, keep = [], []
    for size, roi in zip(region.shape[1:], window):
        extra = max(roi - size, 0)
        pads.append((extra // 2, extra - extra // 2))
        keep.append(slice(extra // 2, extra // 2 + size))
    if any(sum(p) for p in pads):
        flat = [v for pair in reversed(pads) for v in pair]  # functional.pad lists the last axis first
        region = torch.nn.functional.pad(region, flat, mode="constant", value=0.0)
    return region, tuple(keep)


def _blend(
    region: torch.Tensor,
    network: Network,
    window: Sequence[int],
    overlap: float,
    batch_size: int,
    before_batch: Callable[[], None] | None,
    accumulate_dtype: torch.dtype | None,
) -> tuple[SlabSums, SlabSums]:
    """Gaussian-weighted sums of window logits (K, I, J, K) over ``region`` (C, I, J, K), and of the weights."""
    shape = region.shape[1:]
    roi = tuple(min(w, n) for w, n in zip(window, shape))
    weight = compute_importance_map(roi, mode="gaussian", sigma_scale=0.125, device="cpu")
    starts = [
        (a, b, c)
        for a in window_starts(shape[0], roi[0], overlap)
        for b in window_starts(shape[1], roi[1], overlap)
        for c in window_starts(shape[2], roi[2], overlap)
    ]
    summed: SlabSums | None = None
    compact = accumulate_dtype or (torch.float16 if math.prod(shape) * 4 > COMPACT_ELEMENTS else torch.float32)
    weights = SlabSums(1, shape, compact)
    for start in starts:  # the weights are the same for every class: one channel, summed once up front
        weights.add(tuple(slice(s, s + r) for s, r in zip(start, roi)), weight[None])
    for first in range(0, len(starts), batch_size):
        group = starts[first : first + batch_size]
        if before_batch is not None:
            before_batch()
        where = [tuple(slice(s, s + r) for s, r in zip(start, roi)) for start in group]
        patches = torch.stack([region[(slice(None), *w)] for w in where])
        logits = network(patches).float()
        weighted = logits * weight
        if summed is None:
            size = logits.shape[1] * math.prod(shape)
            dtype = accumulate_dtype or (torch.float16 if size > COMPACT_ELEMENTS else torch.float32)
            summed = SlabSums(logits.shape[1], shape, dtype)
        for w, values in zip(where, weighted):
            summed.add(w, values)
    return summed, weights
