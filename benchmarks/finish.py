"""Finish benchmark: resampling back and the per-voxel finish on a 1 mm whole brain, old path against new, in one run.

The scan is the MNI ICBM152 template at 1 mm (197 x 233 x 189, nilearn's wheel), predicted with the
shipped brain model (``Predictor`` defaults). Rounds alternate: the baseline (the code before issue 14:
MONAI ``SpatialResample``, MONAI ``KeepLargestConnectedComponent``, xlogy entropy, scipy's labelling in the
QC) and medseg's current finish (separable resampling, cc3d components, in-place entropy). Each round's ``timings`` give
``resample`` and ``postprocess`` (labels, entropy, clean-up, volumes, QC); the fastest of each is
reported, with the agreement of the two outputs (Dice per class, largest entropy difference).
End to end (read the NIfTI, predict, write labels) is timed too, fastest of the rounds.

Usage:
    nice -n 19 python benchmarks/finish.py [--rounds 3]   # writes benchmarks/results/finish.{json,md}
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import KeepLargestConnectedComponent
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, write_results  # noqa: E402

ensure_root_on_path()

from medseg.data.template import tissue_template  # noqa: E402
from medseg.inference import finish as finish_module  # noqa: E402
from medseg.inference import predictor as predictor_module  # noqa: E402
from medseg.inference import qc as qc_module  # noqa: E402
from medseg.inference.predictor import Predictor  # noqa: E402
from medseg.io import read_scan  # noqa: E402
from medseg.io.write import write_labels  # noqa: E402

MODEL = ROOT / "models" / "brain-tissue-unet"


def monai_largest_foreground(labels: np.ndarray) -> np.ndarray:
    """The clean-up before issue 14: MONAI's transform on the whole grid."""
    chosen = [int(v) for v in np.unique(labels) if v]
    if not chosen:
        return labels.copy()
    transform = KeepLargestConnectedComponent(applied_labels=chosen, is_onehot=False, independent=False,
                                              connectivity=3)
    return np.asarray(transform(torch.as_tensor(labels[None].astype(np.int64)))[0].numpy(), dtype=labels.dtype)


def xlogy_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """The entropy before issue 14: xlogy over the whole (C, ...) slab."""
    entropy = -torch.special.xlogy(probabilities, probabilities).sum(dim=0)
    if probabilities.shape[0] > 1:
        entropy /= math.log(probabilities.shape[0])
    return entropy.clamp_(min=0.0)


def scipy_outside_ml(labels: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The QC's stray-foreground measure before issue 14: scipy's labelling."""
    foreground = np.asarray(labels) > 0
    if not foreground.any():
        return 0.0
    components, count = ndimage.label(foreground, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return 0.0
    sizes = np.bincount(components.ravel())[1:]
    return int(foreground.sum() - sizes.max()) * float(np.prod(spacing)) / 1000.0


# (module, attribute, the code before issue 14)
BEFORE = [
    (finish_module, "axis_map", lambda grid, source: None),  # every grid through SpatialResample
    (finish_module, "normalised_entropy", xlogy_entropy),
    (predictor_module, "keep_largest_foreground", monai_largest_foreground),
    (qc_module, "outside_main_structure_ml", scipy_outside_ml),
]
CURRENT = [(module, name, getattr(module, name)) for module, name, _ in BEFORE]


def baseline(on: bool) -> None:
    """Switch the finish to the code before issue 14 (on) or back (off)."""
    for module, name, function in BEFORE if on else CURRENT:
        setattr(module, name, function)


def dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    total = int(x.sum()) + int(y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total


def run(rounds: int) -> dict[str, object]:
    volume, _ = tissue_template(downsample=1)
    predictor = Predictor.from_model(MODEL)
    best: dict[str, dict[str, float]] = {"baseline": {}, "medseg": {}}
    outputs = {}
    predictor.predict(volume)  # warm-up (engine choice, threads)
    for _ in range(rounds):
        for name in ("baseline", "medseg"):
            baseline(name == "baseline")
            try:
                prediction = predictor.predict(volume)
            finally:
                baseline(False)
            timings = dict(prediction.timings)
            timings["finish"] = timings["resample"] + timings["postprocess"]
            for key, value in timings.items():
                best[name][key] = min(best[name].get(key, np.inf), value)
            outputs[name] = prediction
    old, new = outputs["baseline"], outputs["medseg"]
    agreement = {
        "dice": {name: round(dice(old.labels.array, new.labels.array, c), 5)
                 for c, name in enumerate(predictor.class_names)},
        "entropy_max_abs_diff": float(np.abs(old.uncertainty - new.uncertainty).max()),
        "probability_max_abs_diff": float(np.abs(old.probabilities - new.probabilities).max()),
    }
    end_to_end = np.inf
    with tempfile.TemporaryDirectory() as folder:
        scan = Path(folder) / "head.nii.gz"
        image = nib.Nifti1Image(np.asarray(volume.array[0], dtype=np.float32), volume.affine)
        image.set_qform(volume.affine, code=1)
        image.set_sform(volume.affine, code=1)
        nib.save(image, scan)
        for _ in range(rounds):
            start = time.perf_counter()
            read = read_scan(scan)
            prediction = predictor.predict(read)
            write_labels(prediction.labels, Path(folder) / "labels.nii.gz", read)
            end_to_end = min(end_to_end, time.perf_counter() - start)
    return {"shape": list(volume.spatial_shape), "best": best, "agreement": agreement,
            "end_to_end_s": round(end_to_end, 3)}


def markdown(result: dict[str, object]) -> str:
    best = result["best"]
    rows = []
    for key in ("resample", "postprocess", "finish", "network", "total"):
        old, new = best["baseline"][key], best["medseg"][key]
        rows.append([key, f"{old:.3f}", f"{new:.3f}", f"{old / new:.2f}x"])
    table = markdown_table(["stage (1 mm brain " + "x".join(map(str, result["shape"])) + ")", "before s",
                            "medseg s", "speed-up"], rows)
    agreement = result["agreement"]
    return (f"{table}\n\nAgreement: Dice {agreement['dice']}, entropy max |diff| "
            f"{agreement['entropy_max_abs_diff']:.2e}, probability max |diff| "
            f"{agreement['probability_max_abs_diff']:.2e}. End to end (read .nii.gz, predict, write labels): "
            f"{result['end_to_end_s']:.2f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    facts = machine()
    result = run(args.rounds)
    table = markdown(result)
    print(table)
    payload = {"benchmark": "finish", "machine": facts, "load_average_end": machine()["load_average"],
               "rounds": args.rounds, **result}
    print(f"wrote {write_results('finish', payload, table)}")


if __name__ == "__main__":
    main()
