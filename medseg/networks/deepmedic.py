"""DeepMedic (Kamnitsas et al., Medical Image Analysis 2017): a two-pathway 3D CNN of valid convolutions.

MONAI has no DeepMedic, and the original code base (github.com/deepmedic/deepmedic) is TensorFlow 1
code that is no longer maintained, so this is a PyTorch re-implementation of its default design:

- two pathways of ``L = 8`` unpadded 3x3x3 convolutions (feature maps 30, 30, 40, 40, 40, 40, 50, 50),
  pre-activation layers (batch norm, PReLU, convolution; the first layer convolves the raw input);
- residual connections at layers 4, 6 and 8: the output of layer ``l - 2``, centre-cropped, is added to the
  output of layer ``l`` (zero channels appended when it has fewer feature maps, as DeepMedic does);
- a normal-resolution pathway, and a low-resolution one that sees the same centre with a 3x wider
  context (average pooling by ``f = 3``); its output is up-sampled by repetition and concatenated;
- two hidden 1x1x1 layers of 150 feature maps and a 1x1x1 classifier, with dropout on the inputs of the
  last two (``NetworkConfig.dropout``; DeepMedic used 0.5).

Input layout: one tensor holds the normal-resolution segment *plus* the low-resolution pathway's context.
For an input of ``N`` voxels per axis the normal pathway takes the centre ``n = N - 2 (f - 1) L`` voxels
(the "normal segment") and gives ``n - 2 L`` outputs; the whole input is pooled for the low-resolution
pathway. So ``output = n - 16 = N - 48`` with the defaults: a training segment of 25^3 (input 57^3)
gives 9^3 outputs, an inference segment of 61^3 (input 93^3) gives 45^3. The margin per side of the
*input tensor* is ``f L = 24``; that of the normal segment is ``L = 8``.

Receptive field (defaults): 17^3 voxels for the normal pathway, 51^3 (``f (2 L + 1)``) for the whole
network. Pooling blocks start at input index 0, so the low-resolution field of output ``v`` spans inputs
``f * (v // f)`` to ``f * (v // f) + 50``: centred when ``v % 3 == 1``, one voxel off otherwise. The network
is therefore equivariant to shifts by multiples of ``f`` (not 1): sliding windows must start at multiples
of ``f`` to stitch exactly (``medseg.networks.valid_padding`` does this). An input side that is not a
multiple of ``f`` is edge-padded at its end before pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils.fusion import fuse_conv_bn_eval

from medseg.config import NetworkConfig
from medseg.errors import ConfigError
from medseg.networks import channelwise
from medseg.networks.spec import NetworkGeometry, NetworkSpec

# Output sizes per axis of the default geometry (DeepMedic's training and inference segments: 25^3 -> 9^3,
# and 45^3 or larger at inference: 61^3 -> 45^3, a multiple of 3 for exact stitching).
DEFAULT_TRAIN_OUTPUT = 9
DEFAULT_INFER_OUTPUT = 45


def _centre_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the spatial centre of ``x`` (B, C, X, Y, Z) to ``size`` (3 ints, same parity as x)."""
    starts = [(have - want) // 2 for have, want in zip(x.shape[2:], size, strict=True)]
    return x[:, :, starts[0] : starts[0] + size[0], starts[1] : starts[1] + size[1], starts[2] : starts[2] + size[2]]


def _add_residual(out: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """``out + crop(earlier)``: missing earlier channels count as zero, extra ones are dropped."""
    earlier = _centre_crop(earlier, out.shape[2:])
    channels = min(out.shape[1], earlier.shape[1])
    if channels == out.shape[1]:
        return out + earlier[:, :channels]
    return torch.cat([out[:, :channels] + earlier, out[:, channels:]], dim=1)


class _Layer(nn.Sequential):
    """Pre-activation layer: [BatchNorm, PReLU, Dropout], then a convolution (valid padding).

    Batch norm and PReLU are ``medseg.networks.channelwise``'s: PyTorch's own, with the same parameters,
    but fast on the channels-last activations of bf16 inference.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, activate: bool, dropout: float) -> None:
        parts: list[nn.Module] = []
        if activate:
            parts += [channelwise.BatchNorm3d(in_channels), channelwise.PReLU(in_channels)]
        if dropout > 0:
            parts.append(nn.Dropout(dropout))  # element-wise, as DeepMedic (not whole channels)
        parts.append(nn.Conv3d(in_channels, out_channels, kernel_size=kernel))
        super().__init__(*parts)


class Pathway(nn.Module):
    """A stack of unpadded 3x3x3 layers with residual connections: (B, C, n, n, n) -> (B, channels[-1], n-2L, ...)."""

    def __init__(self, in_channels: int, channels: Sequence[int], residual_layers: Sequence[int]) -> None:
        super().__init__()
        sizes = [in_channels, *channels]
        self.layers = nn.ModuleList(
            _Layer(sizes[i], sizes[i + 1], kernel=3, activate=i > 0, dropout=0.0) for i in range(len(channels))
        )
        self.residual_layers = frozenset(residual_layers)

    def fold_norms(self) -> int:
        """Fold into a layer's convolution the next layer's batch norm (running averages) where that is exact.

        The output of layer ``l`` feeds only the next layer's batch norm unless it is a residual sum (``l`` in
        ``residual_layers``) or a residual source (``l + 2`` in it), whose un-normalised values are added later.
        With residual layers 4, 6, 8 that leaves the norms after layers 1, 3, 5 and 7: 4 of the 7. Evaluation
        only (the modules must be in eval mode). Returns the number folded.
        """
        count = 0
        for number in range(1, len(self.layers)):
            if number in self.residual_layers or number + 2 in self.residual_layers:
                continue
            producer, consumer = self.layers[number - 1], self.layers[number]
            norm = consumer[0]
            if not isinstance(norm, nn.BatchNorm3d) or norm.running_mean is None or norm.running_var is None:
                continue
            producer[-1] = fuse_conv_bn_eval(producer[-1], norm)
            consumer[0] = nn.Identity()
            count += 1
        return count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Only the last two layer outputs are kept (a residual adds the output of layer number - 2): at inference
        # a whole-volume forward then holds ~4 feature maps per voxel instead of every layer's.
        recent: list[torch.Tensor] = []
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if number in self.residual_layers:
                x = _add_residual(x, recent[-2])  # the output of layer number - 2
            recent = [*recent[-1:], x]
        return x


class DeepMedic(nn.Module):
    """Two-pathway DeepMedic; see the module docstring for the input layout and receptive field.

    Args:
        in_channels: input modalities.
        out_channels: classes including background.
        channels: feature maps of each 3x3x3 layer of the normal pathway; ``L = len(channels)``.
        low_channels: those of the low-resolution pathway (same length); None = ``channels``.
        fc_channels: feature maps of the hidden 1x1x1 layers.
        residual_layers: 1-based layer numbers (3..L) with a residual connection.
        downsample: pooling factor ``f`` of the low-resolution pathway.
        dropout: dropout probability on the inputs of the last two 1x1x1 layers.

    Shapes:
        ``(B, in_channels, N1, N2, N3)`` -> logits ``(B, out_channels, N1 - 2m, N2 - 2m, N3 - 2m)``,
        ``m = f * L`` (``self.margin``), every ``Ni >= 2m + 1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (30, 30, 40, 40, 40, 40, 50, 50),
        low_channels: Sequence[int] | None = None,
        fc_channels: Sequence[int] = (150, 150),
        residual_layers: Sequence[int] = (4, 6, 8),
        downsample: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.depth = len(channels)
        self.split_head = True  # evaluation: the head's low-pathway part at low resolution (``_split_head``)
        self.downsample = downsample
        self.margin = downsample * self.depth
        self.normal = Pathway(in_channels, channels, residual_layers)
        low_channels = channels if low_channels is None else low_channels
        if len(low_channels) != len(channels):
            raise ConfigError(f"deepmedic: {len(low_channels)} low-resolution layers for {len(channels)} normal ones")
        self.low = Pathway(in_channels, low_channels, residual_layers)
        sizes = [channels[-1] + low_channels[-1], *fc_channels, out_channels]
        self.head = nn.Sequential(
            *(
                _Layer(sizes[i], sizes[i + 1], kernel=1, activate=True, dropout=dropout if i > 0 else 0.0)
                for i in range(len(sizes) - 1)
            )
        )

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Output voxels per axis for an input of ``input_size``; ConfigError if too small."""
        if any(n < 2 * self.margin + 1 for n in input_size):
            raise ConfigError(
                f"deepmedic: input {list(input_size)} is too small; each side needs at least "
                f"{2 * self.margin + 1} voxels (a normal segment of {2 * self.depth + 1} plus "
                f"{self.margin - self.depth} voxels of low-resolution context per side)"
            )
        return tuple(n - 2 * self.margin for n in input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the centre of ``x``: (B, C, N1, N2, N3) -> (B, out_channels, N1 - 2m, N2 - 2m, N3 - 2m)."""
        size = x.shape[2:]
        out_size = self.output_size(size)
        context = self.margin - self.depth
        normal = self.normal(
            x[:, :, context : size[0] - context, context : size[1] - context, context : size[2] - context]
        )

        f = self.downsample
        end_pad = [(f - n % f) % f for n in size]
        low = x
        if any(end_pad):
            # Replicate the last plane so pooling blocks stay aligned with index 0 (pad lists the last axis first).
            low = functional.pad(x, (0, end_pad[2], 0, end_pad[1], 0, end_pad[0]), mode="replicate")
        low = self.low(functional.avg_pool3d(low, kernel_size=f, stride=f))
        if self._head_splits(out_size):
            return self._split_head(normal, low, out_size)
        for axis in (2, 3, 4):
            low = low.repeat_interleave(f, dim=axis)
        low = low[:, :, : out_size[0], : out_size[1], : out_size[2]]
        return self.head(torch.cat([normal, low], dim=1))


    def _head_splits(self, out_size: Sequence[int]) -> bool:
        """Whether ``_split_head`` gives this forward's answer: evaluation with running batch-norm averages."""
        norm = self.head[0][0]
        return (
            self.split_head
            and not self.training
            and not torch.jit.is_tracing()  # exports keep the concatenation: valid for any output size
            and not torch.onnx.is_in_onnx_export()
            and isinstance(norm, nn.BatchNorm3d)
            and norm.running_mean is not None
            and all(n % self.downsample == 0 for n in out_size)
        )

    def _split_head(self, normal: torch.Tensor, low: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        """The head without up-sampling the low pathway: (B, Cn, X, Y, Z), (B, Cl, >= X/f, ..) -> logits.

        The head's first layer (batch norm with running averages, PReLU, 1x1x1 convolution) acts on each
        voxel's channels alone, so on the concatenation [normal, up(low)] it equals its normal-pathway
        part plus the up-sampled result of its low-pathway part, computed at 1/f^3 of the voxels. The
        up-sampling (repetition by ``f``) is a broadcast added in place: the 100-channel concatenation at
        full resolution is never built. Measured on a 1 mm head (2 mm grid, bf16): the concatenation,
        repetition and full-resolution batch norm and PReLU of the low part were 15 % of the forward.
        """
        first = self.head[0]
        norm, activation, convolution = first[0], first[1], first[-1]
        split = normal.shape[1]

        def part(x: torch.Tensor, channels: slice, bias: torch.Tensor | None) -> torch.Tensor:
            x = channelwise.batch_norm(
                x, norm.running_mean[channels], norm.running_var[channels], norm.weight[channels],
                norm.bias[channels], norm.eps,
            )
            x = channelwise.prelu(x, activation.weight[channels])
            return functional.conv3d(x, convolution.weight[:, channels], bias)

        near = part(normal, slice(0, split), convolution.bias)  # (B, F, X, Y, Z)
        f = self.downsample
        coarse = [n // f for n in out_size]
        far = part(low[:, :, : coarse[0], : coarse[1], : coarse[2]], slice(split, None), None)  # (B, F, X/f, ..)
        b, features = near.shape[:2]
        near.view(b, features, coarse[0], f, coarse[1], f, coarse[2], f).add_(
            far.reshape(b, features, coarse[0], 1, coarse[1], 1, coarse[2], 1)
        )
        x = near
        for layer in self.head[1:]:
            x = layer(x)
        return x


def _check_config(config: NetworkConfig) -> None:
    """Raise ConfigError for DeepMedic hyperparameters that cannot build a network."""
    depth = len(config.deepmedic_channels)
    if depth < 1 or any(c < 1 for c in config.deepmedic_channels):
        raise ConfigError(
            f"network.deepmedic_channels: need positive feature maps, got {list(config.deepmedic_channels)}"
        )
    low = config.deepmedic_low_channels
    if low and (len(low) != depth or any(c < 1 for c in low)):
        raise ConfigError(
            f"network.deepmedic_low_channels: need {depth} positive feature maps (one per layer of "
            f"network.deepmedic_channels) or none, got {list(low)}"
        )
    if any(c < 1 for c in config.deepmedic_fc_channels):
        raise ConfigError(
            f"network.deepmedic_fc_channels: need positive feature maps, got {list(config.deepmedic_fc_channels)}"
        )
    bad = [n for n in config.deepmedic_residual_layers if not 3 <= n <= depth]
    if bad:
        raise ConfigError(
            f"network.deepmedic_residual_layers: {bad} outside 3..{depth} "
            "(a residual connection at layer l adds the output of layer l-2)"
        )
    if config.deepmedic_downsample < 1:
        raise ConfigError(f"network.deepmedic_downsample: must be >= 1, got {config.deepmedic_downsample}")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"network.dropout: must be in [0, 1), got {config.dropout}")


def build_deepmedic(config: NetworkConfig) -> nn.Module:
    """DeepMedic from ``config.deepmedic_*``, ``in_channels``, ``out_channels`` and ``dropout``."""
    _check_config(config)
    return DeepMedic(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.deepmedic_channels,
        low_channels=config.deepmedic_low_channels or None,
        fc_channels=config.deepmedic_fc_channels,
        residual_layers=config.deepmedic_residual_layers,
        downsample=config.deepmedic_downsample,
        dropout=config.dropout,
    )


def deepmedic_margin(config: NetworkConfig) -> int:
    """Input-tensor margin per side: ``downsample * len(deepmedic_channels)`` (24 by default)."""
    return config.deepmedic_downsample * len(config.deepmedic_channels)


def deepmedic_geometry(config: NetworkConfig) -> NetworkGeometry:
    """Default geometry: training input 57^3 -> 9^3, inference windows of 45^3 (inputs 93^3), align = f."""
    margin = deepmedic_margin(config)
    align = config.deepmedic_downsample
    train = DEFAULT_TRAIN_OUTPUT + 2 * margin
    window = -(-DEFAULT_INFER_OUTPUT // align) * align
    return NetworkGeometry((train,) * 3, (window,) * 3, margin=margin, align=align)


def check_deepmedic_patch(config: NetworkConfig, size: tuple[int, ...]) -> None:
    """Raise ConfigError unless ``size`` (an input patch) is 3 sides of at least ``2 * margin + 1``."""
    minimum = 2 * deepmedic_margin(config) + 1
    if len(size) != 3 or any(s < minimum for s in size):
        raise ConfigError(
            f"deepmedic: input patch {list(size)} must be 3 sides of at least {minimum} voxels "
            f"(output = input - {2 * deepmedic_margin(config)})"
        )


SPEC = NetworkSpec(
    name="deepmedic",
    description="DeepMedic two-pathway CNN (valid convolutions, output = input - 48)",
    builder=build_deepmedic,
    geometry=deepmedic_geometry,
    check_patch=check_deepmedic_patch,
    # Measured (idle, 2 cores, AMX, bf16 autocast, a 96^3 output): 11.5 s -> 6.6 s per whole-volume forward:
    # oneDNN's blocked bf16 kernels otherwise reorder every 30-50 channel activation in and out of NCDHW.
    channels_last=True,
)
