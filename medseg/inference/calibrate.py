"""Temperature scaling of a model folder on the VALIDATION split (never the test split).

Each validation case goes through the config's ``"val"`` chain (image and label preprocessed
together, labels resampled nearest-neighbour), the network gives logits on that grid, and a
seeded random subset of voxels per case (``max_samples`` in all) feeds
``medseg.evaluation.calibration.fit_temperature``. ``calibration.json`` records T and the
top-label ECE before and after on the same voxels; the Predictor applies T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.data.decathlon import Case, read_datalist
from medseg.data.splits import load_split
from medseg.errors import InputError
from medseg.evaluation.calibration import (
    DEFAULT_MAX_SAMPLES,
    expected_calibration_error,
    fit_temperature,
    save_calibration,
    softmax_with_temperature,
)
from medseg.inference.predictor import Predictor
from medseg.transforms import IMAGE, LABEL, build_transforms


@dataclass(frozen=True)
class CalibrationResult:
    """What ``calibrate_model`` fitted.

    Attributes:
        temperature: the fitted T (> 1 softens an over-confident model).
        ece_before: top-label ECE of softmax(logits) on the sampled validation voxels.
        ece_after: the same with softmax(logits / T).
        cases: patient ids of the validation cases used.
        voxels: number of voxels the fit used.
        path: the calibration.json written.
    """

    temperature: float
    ece_before: float
    ece_after: float
    cases: tuple[str, ...]
    voxels: int
    path: Path


def calibrate_model(
    model_dir: str | Path,
    dataset_json: str | Path | Sequence[str | Path],
    split_json: str | Path | Sequence[str | Path],
    *,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationResult:
    """Fit temperature scaling on the validation patients of ``split_json`` and store it in the model folder.

    Args:
        model_dir: the model folder (calibration.json is written there).
        dataset_json: the Decathlon datalist holding the validation cases (with labels); or several,
            e.g. the training data set and a run's shifted synthetic validation set (``synth-val``).
        split_json: the split of each datalist (same order); only its ``val`` patients are used.
        max_samples: voxels used for the fit, spread evenly over the cases.
        seed: seed of the voxel subset.
        device: where the network runs.
        progress: called with (cases done, cases in all).

    Raises:
        InputError: no validation patients, or none of them in a datalist; unpaired datalists and splits.
    """
    predictor = Predictor.from_model(model_dir, device=device)
    datasets = [dataset_json] if isinstance(dataset_json, (str, Path)) else list(dataset_json)
    splits = [split_json] if isinstance(split_json, (str, Path)) else list(split_json)
    if len(datasets) != len(splits):
        raise InputError(model_dir, f"{len(datasets)} data set(s) but {len(splits)} split(s)",
                         "give one --split per --data, in the same order")
    cases = []
    for dataset_path, split_path in zip(datasets, splits):
        cases += _validation_cases(dataset_path, split_path)
    chain = build_transforms("val", predictor.config, predictor.modalities)
    per_case = max(1, max_samples // len(cases))
    rng = np.random.default_rng(seed)
    logits_parts, label_parts = [], []
    for index, case in enumerate(cases):
        item = chain({IMAGE: [str(p) for p in case.images], LABEL: str(case.label)})
        logits = predictor.predict_logits(item[IMAGE])  # (K, I, J, K) on the preprocessed grid
        labels = torch.as_tensor(item[LABEL]).as_subclass(torch.Tensor)[0].round().long()
        samples = logits.reshape(logits.shape[0], -1).T.cpu().numpy()
        targets = labels.reshape(-1).cpu().numpy()
        if samples.shape[0] > per_case:
            chosen = rng.choice(samples.shape[0], size=per_case, replace=False)
            samples, targets = samples[chosen], targets[chosen]
        logits_parts.append(samples)
        label_parts.append(targets)
        if progress is not None:
            progress(index + 1, len(cases))
    samples = np.concatenate(logits_parts).astype(np.float32)
    targets = np.concatenate(label_parts).astype(np.int64)
    temperature = fit_temperature(samples, targets, max_samples=samples.shape[0], seed=seed)
    ece_before = expected_calibration_error(softmax_with_temperature(samples, 1.0, axis=1), targets)
    ece_after = expected_calibration_error(softmax_with_temperature(samples, temperature, axis=1), targets)
    if not math.isfinite(ece_after):
        raise InputError(model_dir, "calibration gave a non-finite ECE", "check the validation labels")
    path = save_calibration(model_dir, temperature, ece_before, ece_after)
    return CalibrationResult(temperature, ece_before, ece_after, tuple(c.patient_id for c in cases),
                             int(samples.shape[0]), path)


def _validation_cases(dataset_json: str | Path, split_json: str | Path) -> list[Case]:
    """The labelled validation cases of one datalist under its split."""
    split = load_split(split_json)
    if not split.val:
        raise InputError(split_json, "the split has no validation patients",
                         "calibration must use held-out validation data (never the test split)")
    datalist = read_datalist(dataset_json)
    wanted = set(split.val)
    cases = [case for case in datalist.training if case.patient_id in wanted and case.label is not None]
    if not cases:
        raise InputError(dataset_json, "none of the split's validation patients are in this data set (with labels)",
                         "give the dataset.json the run was trained on")
    return cases
