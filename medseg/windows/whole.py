"""One forward over a whole volume (same-size networks), or over aligned segments (valid networks).

* ``whole_volume``: the scan, zero-padded symmetrically up to a multiple of the network's divisor (a
  UNet's product of strides), in one forward; the padding is cut off the logits. For a network whose
  answer does not depend on where windows fall this equals the sliding windows' answer away from
  the borders, at ``(1 / (1 - overlap))^3`` less compute.
* ``segment_volume``: a valid-convolution network (DeepMedic: output = input - 2 margin) over output
  segments that tile the volume without overlap, each cut with its full context from the volume padded
  once (``medseg.networks.pad_for_valid``), one forward per segment (DeepMedic's low-resolution pathway
  runs once per segment). Segment sides and starts are multiples of ``align``, so every segment sits on
  the pooling grid of the whole-volume forward; one segment covering the volume is that forward.

Both return ``VolumeLogits``, which turns into probabilities in place, a slab at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from medseg.networks.valid_padding import pad_for_valid

Network = Callable[[torch.Tensor], torch.Tensor]
# Softmax a slab of this many voxels at a time (no full-size temporaries).
SLAB_VOXELS = 1 << 20
# The other classes' logits outside a ``segment_volume`` region: softmax gives them 0 and class 0 one, in float32.
OUTSIDE_LOGIT = -1.0e4


@dataclass(eq=False)
class VolumeLogits:
    """Logits of a whole scan, before they become probabilities.

    Attributes:
        values: (K, I, J, K) float32 logits (no temperature).
        temperature: softmax(logits / T).
    """

    values: torch.Tensor | None
    temperature: float = 1.0

    def logits(self) -> torch.Tensor:
        """(K, I, J, K) float32 logits; releases them from this object."""
        values, self.values = self.values, None
        return values

    def probabilities(self) -> torch.Tensor:
        """(K, I, J, K) float32 probabilities summing to 1 over classes, computed in place of the logits."""
        values = self.logits()
        plane = max(math.prod(values.shape[2:]), 1)
        step = max(SLAB_VOXELS // plane, 1)
        with torch.inference_mode():
            for start in range(0, values.shape[1], step):
                part = values[:, start : start + step]
                part.copy_(torch.softmax(part / self.temperature, dim=0))
        return values


def whole_volume(
    image: torch.Tensor,
    network: Network,
    divisor: int = 1,
    *,
    temperature: float = 1.0,
    before_batch: Callable[[], None] | None = None,
) -> VolumeLogits:
    """One forward over ``image`` (C, I, J, K), zero-padded symmetrically to multiples of ``divisor``."""
    pads, keep = [], []
    for size in image.shape[1:]:
        extra = -size % divisor
        pads.append((extra // 2, extra - extra // 2))
        keep.append(slice(extra // 2, extra // 2 + size))
    batch = image[None].float()
    if any(sum(p) for p in pads):
        batch = torch.nn.functional.pad(batch, [v for pair in reversed(pads) for v in pair])
    if before_batch is not None:
        before_batch()
    with torch.inference_mode():
        logits = network(batch)[0]
        del batch
        logits = logits[(slice(None), *keep)].float().contiguous()
    return VolumeLogits(logits, temperature)


def segment_starts(bounds: tuple[int, int], segment: int) -> list[int]:
    """Starts of the output segments tiling voxels ``bounds[0]`` to ``bounds[1]`` (the last one may be shorter)."""
    return list(range(bounds[0], bounds[1], segment))


def _aligned_bounds(region: Sequence[slice], size: Sequence[int], aligned: Sequence[int],
                    align: int) -> list[tuple[int, int]]:
    """Per axis, ``region`` widened to the pooling grid: start down, stop up to a multiple of ``align``."""
    bounds = []
    for box, n, limit in zip(region, size, aligned):
        start, stop, _ = box.indices(n)
        if stop <= start:
            raise ValueError(f"segment_volume: empty region {tuple(region)} of a volume of {tuple(size)} voxels")
        bounds.append((start // align * align, min(-(-stop // align) * align, limit)))
    return bounds


def segment_volume(
    image: torch.Tensor,
    network: Network,
    segment: Sequence[int],
    margin: int,
    align: int = 1,
    *,
    pad_mode: str = "replicate",
    temperature: float = 1.0,
    before_batch: Callable[[], None] | None = None,
    region: Sequence[slice] | None = None,
) -> VolumeLogits:
    """Logits (K, I, J, K) of a valid network over output segments of ``segment`` voxels (multiples of ``align``).

    Equal to ``SameSizeOutput(network, margin, align, pad_mode)`` for a network equivariant to shifts
    by ``align`` (DeepMedic with running batch-norm statistics); with per-window statistics each
    segment normalises over its own input.

    ``region`` (a box of the volume's voxels): compute only the segments tiling it, from starts on the same
    pooling grid and each with its full context, so every voxel in it gets the whole forward's logits; outside
    the computed segments the logits say class 0 with certainty (0 for it, ``OUTSIDE_LOGIT`` for the others).
    """
    size = tuple(image.shape[1:])
    with torch.inference_mode():
        context = pad_for_valid(image[None].float(), margin, align, pad_mode)
        aligned = tuple(n - 2 * margin for n in context.shape[2:])
        bounds = [(0, n) for n in aligned] if region is None else _aligned_bounds(region, size, aligned, align)
        result: torch.Tensor | None = None
        for a in segment_starts(bounds[0], segment[0]):
            for b in segment_starts(bounds[1], segment[1]):
                for c in segment_starts(bounds[2], segment[2]):
                    stops = [min(s + w, hi) for s, w, (_, hi) in zip((a, b, c), segment, bounds)]
                    piece = context[:, :, a : stops[0] + 2 * margin, b : stops[1] + 2 * margin,
                                    c : stops[2] + 2 * margin]
                    if before_batch is not None:
                        before_batch()
                    logits = network(piece)[0].float()
                    if result is None:
                        result = torch.empty((logits.shape[0], *size), dtype=torch.float32)
                        if region is not None:
                            result[0] = 0.0
                            result[1:] = OUTSIDE_LOGIT
                    keep = [max(min(stop, n) - start, 0) for start, stop, n in zip((a, b, c), stops, size)]
                    if min(keep) > 0:
                        result[:, a : a + keep[0], b : b + keep[1], c : c + keep[2]] = \
                            logits[:, : keep[0], : keep[1], : keep[2]]
        del context
    return VolumeLogits(result, temperature)
