"""Export a model folder's network to TorchScript or ONNX, checked against PyTorch, and load it back.

``export_model(MODEL_DIR, "torchscript" | "onnx")`` writes ``MODEL_DIR/model.ts`` (``torch.jit.trace``)
or ``MODEL_DIR/model.onnx`` (``torch.onnx.export``; opset 17; input ``image`` (B, C, I, J, K), output
``logits`` (B, K, I', J', K')). The export is traced on a sample window of the network's inference
input size (a seeded standard-normal volume, i.e. the scale of z-scored scans), then:

* its output on that sample is compared with the PyTorch model: the max abs difference of the
  logits is reported and must stay below ``tolerance`` (1e-4), else nothing is written;
* the batch and spatial axes are declared dynamic and checked on a second size (the training patch,
  batch 2); a network whose traced graph does not generalise (shape-dependent branches) is exported
  again at the fixed window size, which is all the sliding window feeds it anyway.

``MODEL_DIR/export.json`` records per format the file (a bare name inside the folder), the sha256 of
``weights.pt`` it came from and of the export itself, the input size, whether the axes are dynamic
and the measured differences. The export's sha256 also goes into the user's trust store
(``medseg.research.export_trust``), outside the folder: loading runs code, so only exports this
user's medseg made, or that the caller trusts explicitly, are ever loaded.
``load_exported_network(path)`` gives a callable ``nn.Module`` (TorchScript module, or an
onnxruntime session wrapper) that sliding-window inference can use in place of the network;
``load_model_export(MODEL_DIR, fmt)`` does the same after checking the export is trusted, stays inside
the folder and still matches the weights.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from medseg.errors import ConfigError, InputError, OutputError
from medseg.io.atomic import atomic_path, atomic_write_text

LOGGER = logging.getLogger(__name__)
ExportFormat = Literal["torchscript", "onnx"]
FILES: dict[str, str] = {"torchscript": "model.ts", "onnx": "model.onnx"}
RECORD_FILE = "export.json"
DEFAULT_TOLERANCE = 1e-4
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """An export and its check.

    Attributes:
        path: the exported file.
        format: ``"torchscript"`` or ``"onnx"``.
        max_abs_diff: max |exported - PyTorch| of the logits on the sample window.
        probability_diff: max |exported - PyTorch| of the softmax probabilities there.
        logit_scale: max |logit| of the PyTorch model there (float32 rounding grows with it).
        input_shape: the sample window (1, C, I, J, K).
        dynamic: True when batch and spatial sizes may vary (checked on a second size).
        dynamic_max_abs_diff: the difference on that second size (NaN when fixed).
        seconds: time of export and checks.
    """

    path: Path
    format: str
    max_abs_diff: float
    probability_diff: float
    logit_scale: float
    input_shape: tuple[int, ...]
    dynamic: bool
    dynamic_max_abs_diff: float
    seconds: float


class OnnxNetwork(nn.Module):
    """An onnxruntime InferenceSession as a module: (B, C, I, J, K) tensor -> logits tensor on the input's device."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        super().__init__()
        from medseg.research.requirements import require

        onnxruntime = require("onnxruntime", "running an ONNX export")

        options = onnxruntime.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy())
        fixed = [d for d in self.input_shape[2:] if isinstance(d, int)]
        if len(fixed) == len(self.input_shape[2:]) and tuple(array.shape[2:]) != tuple(fixed):
            raise InputError(self.path, f"this export takes windows of {fixed} voxels, got {list(array.shape[2:])}",
                             "use the model folder's window size (network.window_size) for sliding windows")
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits).to(image.device)


def load_exported_network(path: str | Path, threads: int = 0) -> nn.Module:
    """A network callable from an exported file: ``.onnx`` -> onnxruntime, ``.ts``/``.pt`` -> TorchScript.

    Raises:
        InputError: missing file, unknown suffix, or a file the runtime cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exported model not found", "export it with `medseg export MODEL_DIR --format ...`")
    if path.suffix == ".onnx":
        from medseg.research.requirements import require

        require("onnxruntime", "running an ONNX export")
        try:
            return OnnxNetwork(path, threads)
        except Exception as error:  # onnxruntime raises its own (C++) exception types on bad files
            raise InputError(path, f"onnxruntime cannot load it ({type(error).__name__})",
                             "export it again with `medseg export MODEL_DIR --format onnx`") from None
    if path.suffix in (".ts", ".pt"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as error:
            raise InputError(path, f"not a TorchScript model ({str(error).splitlines()[0]})",
                             "export it again with `medseg export MODEL_DIR --format torchscript`") from None
    raise InputError(path, f"unknown export type {path.suffix!r}", "give a .onnx or .ts file")


def load_model_export(model_dir: str | Path, fmt: ExportFormat, *, trust: bool = False,
                      store: Path | None = None) -> nn.Module:
    """The model folder's export for ``fmt``, loaded only when trusted, inside the folder and current.

    Args:
        model_dir: the model folder.
        fmt: ``"torchscript"`` or ``"onnx"``.
        trust: load it even when its sha256 is not in the trust store (the user vouches for it).
        store: the trust store (default ``~/.config/medseg/trusted-exports.json``).

    Raises:
        InputError: no export of that format; its path absolute, with ``..`` or leading out of the
            folder; not made by this user's medseg and not trusted; or made from other weights.
    """
    from medseg.inference.completion import file_sha256
    from medseg.inference.model_folder import WEIGHTS_FILE
    from medseg.io.data_file_refs import check_inside
    from medseg.research.export_trust import default_store, is_trusted

    root = Path(model_dir)
    entry = read_export_record(root).get(fmt)
    if not isinstance(entry, dict):
        raise InputError(root / FILES[fmt], f"the model folder has no {fmt} export",
                         f"run `medseg export {root} --format {fmt}`")
    path = check_inside(root, str(entry.get("file", "")), root / RECORD_FILE, "the export file")
    if not path.is_file():
        raise InputError(path, "exported model not found", f"run `medseg export {root} --format {fmt}`")
    digest = file_sha256(path)
    if not trust and not is_trusted(digest, store):
        raise InputError(
            path, f"refused to load: this {fmt} export was not made by medseg export for this user, and loading "
            "an export runs code from it",
            f"export it here with `medseg export {root} --format {fmt}`, or, if you trust the folder's "
            f"source, pass --trust-export (store: {store or default_store()})")
    if entry.get("weights_sha256") != file_sha256(root / WEIGHTS_FILE):
        raise InputError(path, "the export was made from other weights than the folder's weights.pt",
                         f"export it again with `medseg export {root} --format {fmt}`")
    return load_exported_network(path)


def read_export_record(model_dir: Path) -> dict[str, Any]:
    """``export.json`` of a model folder ({} when absent)."""
    path = Path(model_dir) / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot read the export record ({error})", "delete it and export again") from None
    return content if isinstance(content, dict) else {}


def _sample(shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=generator)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max())


def _write_torchscript(network: nn.Module, sample: torch.Tensor, path: Path) -> None:
    # torch 2.13 marks TorchScript deprecated (in favour of torch.export, whose .pt2 files are not yet a
    # stable deployment format); its tracer warnings are expected for shape-dependent Python.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, sample, check_trace=False)
        torch.jit.save(traced, str(path))


def _write_onnx(network: nn.Module, sample: torch.Tensor, path: Path, dynamic: bool) -> None:
    axes = {0: "batch", 2: "i", 3: "j", 4: "k"}
    # The TorchScript-based exporter (dynamo=False): seconds instead of the dynamo exporter's tens of
    # seconds, the same graph for these convolutional networks; shape branches are checked afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (sample,), str(path), dynamo=False, opset_version=ONNX_OPSET, input_names=["image"],
            output_names=["logits"], dynamic_axes={"image": axes, "logits": axes} if dynamic else None,
        )


def export_model(
    model_dir: str | Path, fmt: ExportFormat, out: str | Path | None = None, *, tolerance: float = DEFAULT_TOLERANCE,
    trust_store: Path | None = None,
) -> ExportResult:
    """Export the model folder's network and check it (see the module docstring).

    Args:
        model_dir: a model folder (``medseg export-model``).
        fmt: ``"torchscript"`` or ``"onnx"``.
        out: the file to write (default ``MODEL_DIR/model.ts`` / ``model.onnx``).
        tolerance: the largest max abs difference of the logits accepted.
        trust_store: where the export's sha256 is recorded (default ``~/.config/medseg/trusted-exports.json``).

    Raises:
        ConfigError: unknown format. InputError: an invalid model folder.
        OutputError: the export differs from PyTorch by ``tolerance`` or more (nothing written), or cannot be written.
    """
    from medseg.inference.completion import file_sha256
    from medseg.inference.model_folder import WEIGHTS_FILE, load_model_folder
    from medseg.networks import network_geometry

    if fmt not in FILES:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FILES)}")
    if fmt == "onnx":
        from medseg.research.requirements import require

        require("onnxruntime", "checking an ONNX export")
    started = time.perf_counter()
    model = load_model_folder(model_dir)
    network = model.build_network().eval()
    geometry = network_geometry(model.config.network)
    channels = model.config.network.in_channels
    shape = (1, channels, *geometry.infer_input)
    sample = _sample(shape)
    second_shape = (2, channels, *geometry.train_patch)
    second = _sample(second_shape) if tuple(geometry.train_patch) != tuple(geometry.infer_input) else None
    with torch.no_grad():
        expected = network(sample)
        expected_second = network(second) if second is not None else None
    target = Path(out) if out is not None else model.path / FILES[fmt]
    target.parent.mkdir(parents=True, exist_ok=True)

    dynamic_diff = float("nan")
    with atomic_path(target) as temp:
        dynamic = second is not None
        for attempt in ((True, False) if dynamic else (False,)):
            if fmt == "torchscript":
                _write_torchscript(network, sample, temp)
            else:
                _write_onnx(network, sample, temp, attempt)
            exported = load_exported_network(temp)
            with torch.no_grad():
                output = exported(sample)
                diff = _max_diff(output, expected)
                probability_diff = _max_diff(output.softmax(1), expected.softmax(1))
                if attempt:
                    try:
                        dynamic_diff = _max_diff(exported(second), expected_second)
                    except Exception as error:  # the runtime's own error types for shapes its graph cannot take
                        LOGGER.info("the %s export does not take other sizes (%s); exporting at a fixed size",
                                    fmt, type(error).__name__)
                        dynamic_diff = float("inf")
            dynamic = attempt and dynamic_diff < tolerance
            if dynamic or not attempt:
                break
            dynamic_diff = float("nan")
        scale = float(expected.abs().max())
        if not diff < tolerance:
            raise OutputError(
                f"{target}: the {fmt} export's logits differ from the PyTorch model's by up to {diff:.3g} on the "
                f"sample window {list(shape)} (tolerance {tolerance:g}; logits up to {scale:.3g}, so a relative "
                f"{diff / max(scale, 1e-12):.1g}; probabilities differ by up to {probability_diff:.2g}); nothing was "
                "written. float32 runtimes round large normalisation sums differently: raise --tolerance if this "
                "difference is acceptable for your use"
            )
    seconds = time.perf_counter() - started
    result = ExportResult(target, fmt, diff, probability_diff, scale, shape, dynamic,
                          dynamic_diff if dynamic else float("nan"), seconds)
    from medseg.research.export_trust import record_trusted

    export_sha256 = file_sha256(target)
    record_trusted(export_sha256, target, trust_store)
    try:
        stored = target.resolve().relative_to(model.path.resolve())
    except ValueError:
        return result  # written outside the folder: a standalone file, not the folder's export
    record = read_export_record(model.path)
    record[fmt] = {
        "file": stored.as_posix(), "sha256": export_sha256, "weights_sha256": file_sha256(model.path / WEIGHTS_FILE),
        "input": ["image", list(shape)],
        "output": "logits", "dynamic_axes": dynamic, "max_abs_diff": diff, "probability_max_abs_diff": probability_diff,
        "logit_scale": scale,
        "dynamic_max_abs_diff": result.dynamic_max_abs_diff if dynamic else None, "tolerance": tolerance,
        "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"opset": ONNX_OPSET, "onnxruntime": _onnxruntime_version()} if fmt == "onnx" else {}),
    }
    atomic_write_text(model.path / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return result


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
