"""How much memory a window plan needs: the network's working set per forward, and the full-size arrays.

The estimates are deliberately high (a budget that is kept matters more than one that is tight):

* ``working_bytes``: one forward of a same-size UNet/DynUNet holds, per resolution level ``l`` with
  ``c_l`` feature maps over ``v / s_l^3`` voxels, the skip tensor and the tensors being computed;
  counted as ``WORKING_FACTOR`` float32 maps per level, plus the input and the logits. A DeepMedic
  forward holds the normal pathway's widest layers over its input, the low-resolution pathway over
  1/f^3 of it and the 1x1x1 head's widest layers over the output. Measured peaks (RSS growth of a
  forward, ``tests/windows/test_memory.py`` checks small ones) stay below these: the shipped brain
  UNet over 184x224x184 took 446 MB in bfloat16 and 861 MB in float32 against an estimate of 1.5 GB.
  Estimates count float32; bfloat16 forwards take less.
* ``peak_bytes``: that plus what exists whatever the window: the float32 scan, the window sums (float16
  past ``COMPACT_ELEMENTS`` values) or the whole-volume logits, then the float32 probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medseg.config import NetworkConfig
from medseg.windows.blend import COMPACT_ELEMENTS

# Float32 maps per UNet level held at the peak of a forward (skip, convolution output, normalised/activated copy,
# oneDNN's reordered copies and workspace): measured 194 MB peak growth for a 16-128 UNet on 64x64x80, i.e.
# ~7 maps per level (tests/windows/test_memory.py; 2 was below the measurement).
WORKING_FACTOR = 8
# Per forward, whatever the window: oneDNN's scratchpads, reorder buffers and primitive caches, and the
# allocator's slack. The 16-128 UNet on 64x64x80 peaked at 189 MB on one CPU and 225 MB on another (the
# kernels oneDNN picks depend on the instruction set), against 224 MB from the per-level count alone.
FORWARD_OVERHEAD = 64 * 2**20
# DeepMedic: maps of its widest layers held at once (a layer's input, its normalised and activated copies,
# its output, and the two earlier outputs a residual may add).
DEEPMEDIC_FACTOR = 5
FLOAT32 = 4


def working_bytes(config: NetworkConfig, window: Sequence[int], margin: int = 0) -> int:
    """Bytes one forward holds at its peak for an output window (+ ``2 * margin`` input voxels per axis).

    Args:
        config: the network's config (``name`` picks the formula).
        window: output voxels per axis (same-size networks: the input window).
        margin: voxels lost per side (valid networks).
    """
    outputs = math.prod(window)
    inputs = math.prod(side + 2 * margin for side in window)
    ends = (config.in_channels * inputs + 2 * config.out_channels * outputs) * FLOAT32
    if config.name == "deepmedic":
        widest = max(config.deepmedic_channels)
        widest_low = max(config.deepmedic_low_channels or config.deepmedic_channels)
        low = inputs / config.deepmedic_downsample**3
        # The head holds both pathways' outputs while its 1x1x1 layers run (two of the widest at a time).
        head = widest + widest_low + 2 * max((*config.deepmedic_fc_channels, config.out_channels))
        maps = DEEPMEDIC_FACTOR * (widest * inputs + widest_low * low) + head * outputs
        return int(FORWARD_OVERHEAD + ends + maps * FLOAT32)
    scale, per_voxel = 1, 0.0
    for level, channels in enumerate(config.channels):
        per_voxel += channels / scale**3
        if level < len(config.strides):
            scale *= config.strides[level]
    return int(FORWARD_OVERHEAD + ends + WORKING_FACTOR * per_voxel * outputs * FLOAT32)


def peak_bytes(shape: Sequence[int], in_channels: int, classes: int, kind: str, working: int) -> int:
    """Peak bytes of a plan over a scan of ``shape`` (I, J, K): network phase or probability phase.

    Network phase: the float32 scan, the full-size outputs being filled (``"windows"``: blended sums and
    weights, float16 past ``COMPACT_ELEMENTS`` values; ``"whole"`` / ``"segments"``: float32 logits) and
    one forward's ``working`` bytes. Probability phase: the float32 probabilities, written while the sums
    are freed block by block (the scan is freed first by the Predictor), or in place of the logits.

    Args:
        kind: ``"windows"``, ``"whole"`` or ``"segments"``.
        working: ``working_bytes`` of one forward.
    """
    voxels = math.prod(shape)
    scan = in_channels * voxels * FLOAT32
    probabilities = classes * voxels * FLOAT32
    if kind == "windows":
        outputs = classes * voxels * (2 if classes * voxels > COMPACT_ELEMENTS else FLOAT32)
        outputs += voxels * (2 if voxels * FLOAT32 > COMPACT_ELEMENTS else FLOAT32)
    else:
        outputs = probabilities
    return max(scan + outputs + working, probabilities + outputs // 8)
