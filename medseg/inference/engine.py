"""Which runtime runs the network's windows: PyTorch, or onnxruntime on the CPU.

On this project's CPUs onnxruntime runs the 3D UNets' convolutions (and above all their transposed
convolutions and instance norms) about 2x faster than PyTorch's eager kernels (``benchmarks/``).
``onnx_network(network, window)`` exports the network in memory (``torch.onnx.export``, opset 17,
dynamic batch and spatial axes), checks the export against PyTorch on one window, and returns a
callable on (B, C, I, J, K) tensors. Nothing is written to disk.

Engines: ``"torch"`` (always available), ``"onnxruntime"`` (raises ConfigError when it cannot be
used), ``"auto"`` (onnxruntime when installed, the device is the CPU and the export checks out,
else PyTorch, with the reason logged).

Precision: ``"float32"``, or ``"bfloat16"``: PyTorch with ``torch.autocast`` to bfloat16 on the CPU
(oneDNN; about 2x faster on CPUs with AVX512-BF16/AMX, slower elsewhere), or ``"auto"``: bfloat16
where oneDNN reports native bfloat16 support, else float32.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.networks.precision import bfloat16_native, channels_last_copy

LOGGER = logging.getLogger(__name__)
ENGINES = ("auto", "torch", "onnxruntime")
PRECISIONS = ("auto", "float32", "bfloat16")
# Largest |onnxruntime - torch| of the softmax probabilities on the check window.
CHECK_TOLERANCE = 1e-3


class OnnxWindows:
    """An onnxruntime session over an in-memory export: (B, C, I, J, K) float tensor -> logits tensor."""

    def __init__(self, model_bytes: bytes, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


class AutocastWindows:
    """The PyTorch network under ``torch.autocast(cpu, bfloat16)``: (B, C, I, J, K) -> float32 logits.

    ``channels_last``: a copy of the network with its weights in ``torch.channels_last_3d`` layout runs
    each window given in that layout (the network's own weights are not changed); logits come back in
    the default (contiguous) layout.
    """

    def __init__(self, network: nn.Module, channels_last: bool = False) -> None:
        self.channels_last = channels_last
        self.network = channels_last_copy(network) if channels_last else network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.network(batch).float().contiguous()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"float32"`` or ``"bfloat16"`` for a requested precision on ``device``.

    Raises:
        ConfigError: unknown precision, or ``"bfloat16"`` on a non-CPU device.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if device.type == "cpu" and bfloat16_native() else "float32"
    if precision == "bfloat16" and device.type != "cpu":
        raise ConfigError(f"precision 'bfloat16' is for the CPU here, not {device}; use precision 'float32'")
    return precision


def onnxruntime_available() -> bool:
    """True when onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_network(
    network: nn.Module, in_channels: int, window: Sequence[int], threads: int | None = None
) -> OnnxWindows:
    """Export ``network`` (eval mode, CPU) in memory and wrap it in an onnxruntime session.

    Args:
        network: maps (B, in_channels, *window) to logits (B, K, *window').
        window: the spatial size used to trace and check the export.
        threads: onnxruntime intra-op threads (default: ``torch.get_num_threads()``).

    Raises:
        ConfigError: onnxruntime missing, the export fails, or its softmax differs from PyTorch's by
            more than ``CHECK_TOLERANCE`` on a seeded window.
    """
    if not onnxruntime_available():
        raise ConfigError(
            "engine 'onnxruntime': onnxruntime is not installed; pip install onnxruntime or use engine 'torch'"
        )
    sample = torch.randn((1, in_channels, *window), generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "i", 3: "j", 4: "k"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and training-mode notices
            torch.onnx.export(
                network, (sample,), buffer, dynamo=False, opset_version=17, input_names=["image"],
                output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
            )
        windows = OnnxWindows(buffer.getvalue(), threads or torch.get_num_threads())
        with torch.inference_mode():
            expected = torch.softmax(network(sample).float(), dim=1)
        got = torch.softmax(windows(sample).float(), dim=1)
    except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as error:
        raise ConfigError(
            f"engine 'onnxruntime': the network could not be exported ({type(error).__name__}: {error})"
        ) from None
    difference = float((expected - got).abs().max())
    if difference > CHECK_TOLERANCE:
        raise ConfigError(
            f"engine 'onnxruntime': its probabilities differ from PyTorch's by {difference:.2e} "
            f"(> {CHECK_TOLERANCE}); use engine 'torch'"
        )
    return windows


def select_engine(
    engine: str, network: nn.Module, device: torch.device, in_channels: int, window: Sequence[int],
    precision: str = "float32", channels_last: bool = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable that runs windows for ``engine`` and ``precision`` (see the module docstring).

    ``channels_last``: bfloat16 windows run in channels-last layout (``NetworkSpec.channels_last``).

    Raises:
        ConfigError: unknown engine or precision, ``"onnxruntime"`` that cannot run here, or
            ``"onnxruntime"`` with bfloat16.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if resolve_precision(precision, device) == "bfloat16":
        if engine == "onnxruntime":
            raise ConfigError("engine 'onnxruntime' runs float32 only; use precision 'float32' or engine 'torch'")
        return AutocastWindows(network, channels_last)
    if engine == "torch":
        return network
    if device.type != "cpu":
        if engine == "onnxruntime":
            raise ConfigError(f"engine 'onnxruntime' runs on the CPU only, not on {device}; use engine 'torch'")
        return network
    if engine == "auto" and not onnxruntime_available():
        LOGGER.info("onnxruntime is not installed: windows run in PyTorch")
        return network
    try:
        return onnx_network(network, in_channels, window)
    except ConfigError as error:
        if engine == "onnxruntime":
            raise
        LOGGER.warning("%s; windows run in PyTorch", error)
        return network
