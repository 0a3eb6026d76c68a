"""Refinement benchmark: what the intensity refinement and its bias field cost on a 1 mm brain, in one run.

The scan is the MNI ICBM152 T1 template at 1 mm (skull-stripped, nilearn's wheel) as a NIfTI, predicted with the shipped brain
UNet three ways in alternating rounds on warm predictors: no refinement (the network's probabilities, the
baseline), the refinement without a bias field, and the card's refinement with the class-conditional bias
field (``bias_field: em``). Reported: the fastest ``refine`` stage and end to end (read, predict, write labels)
per variant, and each against the baseline as a ratio.

Usage:
    nice -n 19 python benchmarks/refinement.py [--rounds 5]   # writes benchmarks/results/refinement.{json,md}
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, write_results  # noqa: E402

ensure_root_on_path()

from medseg.data.template import tissue_template  # noqa: E402
from medseg.inference.predictor import Predictor  # noqa: E402
from medseg.io import read_scan  # noqa: E402
from medseg.io.write import write_labels  # noqa: E402

MODEL = ROOT / "models" / "brain-tissue-unet"
VARIANTS = {  # name: Predictor options
    "network alone (baseline)": {"intensity_refinement": False},
    "refinement, no bias field": {"bias_correction": False},
    "refinement + bias field (card)": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    template, _ = tissue_template(downsample=1)
    predictors = {name: Predictor.from_model(MODEL, **options) for name, options in VARIANTS.items()}
    refine: dict[str, list[float]] = {name: [] for name in VARIANTS}
    total: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="medseg-bench-refine-") as temporary:
        scan_path = Path(temporary) / "t1.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(template.array[0], np.float32), np.asarray(template.affine)), str(scan_path))
        shape = nib.load(str(scan_path)).shape
        for round_index in range(args.rounds + 1):  # round 0 warms every predictor up
            for name, predictor in predictors.items():
                began = time.perf_counter()
                volume = read_scan(scan_path)
                prediction = predictor.predict(volume)
                write_labels(prediction.labels, Path(temporary) / "labels.nii.gz", reference=volume)
                if round_index:
                    total[name].append(time.perf_counter() - began)
                    refine[name].append(prediction.timings.get("refine", 0.0))
    baseline = "network alone (baseline)"
    rows = []
    for name in VARIANTS:
        best_total, best_refine = min(total[name]), min(refine[name])
        rows.append([name, f"{best_refine:.3f}", f"{best_total:.3f}",
                     f"{best_total / min(total[baseline]):.2f}x"])
    table = markdown_table([f"variant (1 mm brain {'x'.join(map(str, shape))})", "refine s", "end to end s",
                            "end to end / baseline"], rows)
    table += f"\n\nFastest of {args.rounds} alternating rounds (warm predictors)."
    write_results("refinement", {"machine": machine(), "shape": list(shape), "rounds": args.rounds,
                                 "refine_seconds": refine, "total_seconds": total}, table)
    print(table)


if __name__ == "__main__":
    main()
