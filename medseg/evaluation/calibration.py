"""Calibration: expected calibration error, reliability-diagram data, temperature scaling.

Conventions:

* Inputs are either samples ``(N, C)`` with labels ``(N,)``, or a volume ``(C, I, J, K)``
  with labels ``(I, J, K)``; each voxel is one sample.
* Bins are ``n_bins`` equal-width intervals over [0, 1], closed on the right:
  bin b holds confidences in (b/n, (b+1)/n] (0 goes to the first bin).
* Top-label ECE (Guo et al. 2017): confidence = max probability, correct = argmax equals
  the label; ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|.
* Class-wise ECE: for each class c, the same with confidence p_c and outcome "label == c",
  over all samples; the mean over classes is reported.
* Temperature scaling: calibrated probabilities = softmax(logits / T), one T > 0 for all
  classes, fitted by minimising the negative log-likelihood on held-out samples (LBFGS on
  log T, so T stays positive). A random voxel subset (seeded) bounds memory.
* A model folder stores T in ``calibration.json``; a folder without it means T = 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.errors import InputError
from medseg.io.atomic import atomic_write_text

CALIBRATION_FILE = "calibration.json"
DEFAULT_MAX_SAMPLES = 200_000


def as_samples(
    values: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) values and (N,) int64 labels from either input layout (see module docstring)."""
    values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if values.ndim == 2 and labels.ndim == 1:
        samples = values
    elif values.ndim == labels.ndim + 1 and values.ndim >= 3:
        samples = values.reshape(values.shape[0], -1).T
        labels = labels.reshape(-1)
    else:
        raise ValueError(
            f"expected (N, C) with (N,) or (C, I, J, K) with (I, J, K), got {values.shape} and {labels.shape}"
        )
    if samples.shape[0] != labels.shape[0]:
        raise ValueError(f"{samples.shape[0]} samples but {labels.shape[0]} labels")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= samples.shape[1]):
        raise ValueError(f"labels must lie in 0..{samples.shape[1] - 1}, found {labels.min()}..{labels.max()}")
    return samples, labels


def subsample(
    samples: np.ndarray, labels: np.ndarray, max_samples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_samples`` rows, drawn without replacement with a seeded generator."""
    if samples.shape[0] <= max_samples:
        return samples, labels
    chosen = np.random.default_rng(seed).choice(samples.shape[0], size=max_samples, replace=False)
    return samples[chosen], labels[chosen]


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


@dataclass(frozen=True)
class ReliabilityData:
    """Per-bin statistics of a reliability diagram.

    Attributes:
        edges: shape (n_bins + 1,), bin edges over [0, 1].
        confidence: shape (n_bins,), mean confidence per bin (NaN for empty bins).
        accuracy: shape (n_bins,), observed frequency of being right per bin (NaN if empty).
        counts: shape (n_bins,), samples per bin.
        ece: the expected calibration error these bins give.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    ece: float


def _reliability(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> ReliabilityData:
    """Bins for confidences (N,) in [0, 1] and outcomes (N,) in {0, 1}."""
    index = _bin_index(confidence, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    sum_confidence = np.bincount(index, weights=confidence, minlength=n_bins)
    sum_outcome = np.bincount(index, weights=outcome.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = sum_confidence / counts
        accuracy = sum_outcome / counts
    total = max(int(counts.sum()), 1)
    ece = float(np.sum(np.abs(sum_outcome - sum_confidence)) / total)
    return ReliabilityData(np.linspace(0.0, 1.0, n_bins + 1), mean_confidence, accuracy, counts, ece)


def reliability(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> ReliabilityData:
    """Top-label reliability-diagram data (and ECE) of probabilities (N, C) or (C, I, J, K)."""
    samples, labels = as_samples(probabilities, labels)
    confidence = samples.max(axis=1).astype(np.float64)
    correct = samples.argmax(axis=1) == labels
    return _reliability(confidence, correct, n_bins)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE of probabilities (N, C) with labels (N,), or (C, I, J, K) with (I, J, K)."""
    return reliability(probabilities, labels, n_bins).ece


def classwise_ece(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[int, float]:
    """Per-class ECE: confidence p_c against the outcome ``label == c``, for each class c."""
    samples, labels = as_samples(probabilities, labels)
    return {
        c: _reliability(samples[:, c].astype(np.float64), labels == c, n_bins).ece for c in range(samples.shape[1])
    }


def softmax_with_temperature(logits: np.ndarray | torch.Tensor, temperature: float, axis: int = 0) -> np.ndarray:
    """softmax(logits / T) along ``axis`` (channel axis: 0 for (C, I, J, K), 1 for (N, C))."""
    tensor = logits if isinstance(logits, torch.Tensor) else torch.from_numpy(np.asarray(logits, dtype=np.float32))
    return torch.softmax(tensor.float() / float(temperature), dim=axis).cpu().numpy()


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL of softmax(logits / T) for (N, C) or (C, I, J, K) logits."""
    samples, labels = as_samples(logits, labels)
    scaled = torch.from_numpy(samples.astype(np.float64)) / float(temperature)
    return float(torch.nn.functional.cross_entropy(scaled, torch.from_numpy(labels)).item())


def fit_temperature(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> float:
    """The temperature T minimising the NLL of softmax(logits / T).

    Args:
        logits: (N, C) samples or a (C, I, J, K) volume of pre-softmax outputs.
        labels: (N,) or (I, J, K) true labels.
        max_samples: fit on at most this many voxels (seeded random subset).
        seed: the subset's seed.

    Returns:
        T > 0 (T > 1 softens an over-confident model).
    """
    samples, labels = as_samples(logits, labels)
    samples, labels = subsample(samples, labels, max_samples, seed)
    if samples.shape[0] == 0:
        raise ValueError("fit_temperature needs at least one sample")
    values = torch.from_numpy(samples.astype(np.float64))
    targets = torch.from_numpy(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(values / torch.exp(log_t), targets)
        loss.backward()
        return loss

    optimiser.step(closure)
    temperature = float(torch.exp(log_t).item())
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature fit diverged (T = {temperature}); are the logits finite?")
    return temperature


def save_calibration(model_dir: str | Path, temperature: float, ece_before: float, ece_after: float) -> Path:
    """Write ``MODEL_DIR/calibration.json`` atomically; returns its path."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    content = {
        "method": "temperature_scaling",
        "temperature": float(temperature),
        "ece_before": float(ece_before),
        "ece_after": float(ece_after),
    }
    return atomic_write_text(Path(model_dir) / CALIBRATION_FILE, json.dumps(content, indent=2) + "\n")


def load_calibration(model_dir: str | Path) -> float:
    """The temperature stored in ``MODEL_DIR/calibration.json``; 1.0 when the file is absent.

    Raises:
        InputError: the file exists but is not valid JSON or holds no positive temperature.
    """
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.exists():
        return 1.0
    hint = "run `medseg calibrate` again, or delete the file to use T = 1"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"cannot read the calibration ({error})", hint) from None
    value = content.get("temperature") if isinstance(content, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(path, f"'temperature' must be a positive number, got {value!r}", hint)
    return float(value)
