"""End-to-end time of several models on one scan, measured in interleaved rounds.

On a shared 2-core machine the speed drifts by up to 2x over minutes, so timing one model after the
other (each its best of a few runs) compares two different machines. Here every round runs each model
once, in turn, on warm predictors: a drift hits all models alike, and the median over rounds (and the
median of the per-round ratios) is what the comparison reports.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def interleaved_seconds(
    model_dirs: Sequence[Path], scan: Path, rounds: int = 7, log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Read ``scan``, predict, write the labels: once per model per round, models in turn.

    Args:
        model_dirs: model folders; the first is the reference of the ratios.
        scan: a NIfTI scan.
        rounds: timed rounds (one untimed warm-up round comes first).

    Returns:
        ``{"rounds": rounds, "seconds": {name: [per round]}, "median": {name: s},
        "ratio_to_first": {name: median over rounds of (its time / the first model's time)}}``.
    """
    from medseg.inference.predictor import Predictor
    from medseg.io import read_scan, write_labels

    if rounds < 1:
        raise ValueError(f"rounds: need at least 1, got {rounds}")
    predictors = {Path(model).name: Predictor.from_model(model) for model in model_dirs}
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    with tempfile.TemporaryDirectory(prefix="medseg-interleaved-") as temporary:
        for round_index in range(rounds + 1):
            for name, predictor in predictors.items():
                start = time.perf_counter()
                volume = read_scan(scan)
                prediction = predictor.predict(volume)
                write_labels(prediction.labels, Path(temporary) / f"{name}.nii.gz", reference=volume)
                elapsed = time.perf_counter() - start
                del prediction, volume
                if round_index > 0:
                    seconds[name].append(elapsed)
            log(f"interleaved timing: round {round_index}/{rounds} " + ", ".join(
                f"{name} {values[-1]:.2f} s" for name, values in seconds.items() if values))
    first = next(iter(seconds.values()))
    return {
        "rounds": rounds,
        "seconds": seconds,
        "median": {name: statistics.median(values) for name, values in seconds.items()},
        "ratio_to_first": {name: statistics.median(v / f for v, f in zip(values, first))
                           for name, values in seconds.items()},
    }
