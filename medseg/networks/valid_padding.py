"""Same-size outputs from valid-convolution networks (DeepMedic), whole-volume or by sliding windows.

A network with margin ``m`` maps an input of ``n`` voxels per axis to ``n - 2m``. Two ways to get an output
the size of a volume, which agree exactly (up to float rounding):

- ``SameSizeOutput(network, margin, align)``: pads the whole volume by ``m`` (edge or reflect) and runs
  the network once;
- ``valid_sliding_window_inference(...)``: pads the volume the same way once, then lets MONAI's
  ``sliding_window_inference`` walk output windows over it; each window's network input is cut from the
  padded volume with its real context (MONAI passes the window coordinates, ``with_coord=True``), so
  windows never see padding inside the volume and their overlaps hold identical values.

Networks that down-sample (DeepMedic, factor ``align``) are only equivariant to shifts by multiples of
``align``; the volume is edge-padded at its end to a multiple of ``align``, and window sizes and steps are
multiples of ``align``, so every window starts on the same pooling grid as the whole-volume forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn
from torch.nn import functional

from medseg.errors import ConfigError

PAD_MODES = ("replicate", "reflect")


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def pad_for_valid(x: torch.Tensor, margin: int, align: int = 1, pad_mode: str = "replicate") -> torch.Tensor:
    """Pad ``x`` (B, C, X, Y, Z) for a valid network: the end of each axis to a multiple of ``align``
    (replicate), then ``margin`` voxels on every side (``pad_mode``: "replicate" or "reflect").

    Returns:
        (B, C, X' + 2 margin, Y' + 2 margin, Z' + 2 margin) with ``X' = align * ceil(X / align)``.
    """
    if pad_mode not in PAD_MODES:
        raise ConfigError(f"pad_mode: {pad_mode!r} is not one of {', '.join(PAD_MODES)}")
    end = [_round_up(n, align) - n for n in x.shape[2:]]
    if any(end):
        x = functional.pad(x, (0, end[2], 0, end[1], 0, end[0]), mode="replicate")  # pad lists the last axis first
    if margin > 0:
        if pad_mode == "reflect" and min(x.shape[2:]) <= margin:
            raise ConfigError(
                f"pad_mode 'reflect' needs every side longer than the margin {margin}, got {list(x.shape[2:])}; "
                "use 'replicate'"
            )
        x = functional.pad(x, (margin,) * 6, mode=pad_mode)
    return x


class SameSizeOutput(nn.Module):
    """Wrap a valid network so that its output has its input's size (whole-volume forward).

    Args:
        network: maps (B, C, n1, n2, n3) to (B, K, n1 - 2 margin, ...).
        margin: voxels the network loses per side.
        align: the network's shift-equivariance step (DeepMedic: its down-sampling factor).
        pad_mode: "replicate" (edge) or "reflect" padding of the volume border.

    Shapes:
        (B, C, X, Y, Z) -> (B, K, X, Y, Z).
    """

    def __init__(self, network: nn.Module, margin: int, align: int = 1, pad_mode: str = "replicate") -> None:
        super().__init__()
        self.network = network
        self.margin = margin
        self.align = align
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        out = self.network(pad_for_valid(x, self.margin, self.align, self.pad_mode))
        return out[:, :, : size[0], : size[1], : size[2]]


def _window_steps(
    size: Sequence[int], window: Sequence[int], overlap: float, align: int
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Per-axis windows (clipped to the aligned volume) and MONAI overlaps whose steps are multiples of ``align``."""
    windows, overlaps = [], []
    for n, w in zip(size, window, strict=True):
        w = min(w, n)
        step = max(align, int(w * (1.0 - overlap)) // align * align)
        windows.append(w)
        # MONAI's step is int(w * (1 - overlap)); the half voxel keeps float rounding from losing one.
        overlaps.append(0.0 if step >= w else 1.0 - (step + 0.5) / w)
    return tuple(windows), tuple(overlaps)


def valid_sliding_window_inference(
    inputs: torch.Tensor,
    network: nn.Module,
    window: Sequence[int],
    margin: int,
    *,
    align: int = 1,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    pad_mode: str = "replicate",
    blend_mode: str = "constant",
) -> torch.Tensor:
    """Sliding-window logits of a valid network, stitched by MONAI, of the volume's size.

    Args:
        inputs: (B, C, X, Y, Z) volume.
        network: maps (B, C, w1 + 2 margin, ...) to (B, K, w1, ...); call under ``torch.no_grad()`` and in eval mode.
        window: output window (3 sides, each a multiple of ``align``); clipped to the volume.
        margin: voxels the network loses per side.
        align: window sizes and starts are multiples of this (DeepMedic: its down-sampling factor).
        overlap: fraction of a window shared with the next (the step is rounded down to a multiple of ``align``).
        sw_batch_size: windows per network call.
        pad_mode: "replicate" or "reflect" padding of the volume border.
        blend_mode: MONAI blending of overlaps, "constant" or "gaussian".

    Returns:
        (B, K, X, Y, Z) logits, equal to ``SameSizeOutput(network, margin, align, pad_mode)(inputs)``
        for a network equivariant to shifts by ``align`` (DeepMedic in eval mode).

    Raises:
        ConfigError: a window that is not 3 positive multiples of ``align``, or a bad ``pad_mode``.
    """
    if len(window) != 3 or any(w < 1 or w % align for w in window):
        raise ConfigError(f"window {list(window)} must be 3 positive multiples of {align}")
    size = inputs.shape[2:]
    aligned = pad_for_valid(inputs, 0, align)
    context = pad_for_valid(inputs, margin, align, pad_mode)
    windows, overlaps = _window_steps(aligned.shape[2:], window, overlap, align)

    def predict(patch: torch.Tensor, coordinates: Sequence[Sequence[slice]]) -> torch.Tensor:
        # coordinates: per window [batch slice, channel slice, x, y, z] in ``aligned``; +2 margin in ``context``.
        pieces = [
            context[
                where[0],
                :,
                where[2].start : where[2].stop + 2 * margin,
                where[3].start : where[3].stop + 2 * margin,
                where[4].start : where[4].stop + 2 * margin,
            ]
            for where in coordinates
        ]
        return network(torch.cat(pieces).to(patch.device))

    stitched = sliding_window_inference(
        aligned,
        roi_size=windows,
        sw_batch_size=sw_batch_size,
        predictor=predict,
        overlap=overlaps,
        mode=blend_mode,
        with_coord=True,
    )
    return stitched[:, :, : size[0], : size[1], : size[2]]
