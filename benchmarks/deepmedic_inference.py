"""DeepMedic's inference against the UNet's, and its channels-last layout against the default one, in one process.

Input: a real head (ROBEX's reference T1, as `tests/models` builds it) resampled to 1 mm, 174 x 225 x 232.
Ways, interleaved round by round (the fastest of each reported: the machine may be shared):

* ``unet``: ``Predictor.predict`` with the shipped UNet (everything ``medseg predict`` does but reading
  and writing: preprocessing, the network, back to the scan's grid, refinement, clean-up, QC);
* ``deepmedic``: the same with the shipped DeepMedic (bf16 windows in channels-last layout);
* ``deepmedic-nchw``: the same with DeepMedic's windows in the default NCDHW layout (the code before);
* ``forward`` rows: DeepMedic's network pass alone (``Prediction.timings["network"]``) of those two.

Also reported: the largest difference of the two DeepMedic layouts' probabilities and their label
agreement (bf16 rounding only: the same kernels reordered). Usage::

    python benchmarks/deepmedic_inference.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, peak_rss_mb, write_results  # noqa: E402

ensure_root_on_path()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    from real_scan_helpers import load_real_checks

    from medseg.evaluation.shift_checks import write_one_mm_head
    from medseg.inference.predictor import Predictor
    from medseg.io import read_scan

    check = load_real_checks(names=["robex-t1"])[0]
    with tempfile.TemporaryDirectory(prefix="medseg-bench-") as temporary:
        volume = read_scan(write_one_mm_head(check, Path(temporary) / "head_1mm.nii.gz"))
    predictors = {
        "unet": Predictor.from_model(ROOT / "models" / "brain-tissue-unet"),
        "deepmedic": Predictor.from_model(ROOT / "models" / "brain-tissue-deepmedic"),
        "deepmedic-nchw": Predictor.from_model(ROOT / "models" / "brain-tissue-deepmedic", channels_last=False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    network: dict[str, list[float]] = {name: [] for name in predictors}
    outputs = {}
    for _ in range(args.rounds):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            prediction = predictor.predict(volume)
            seconds[name].append(time.perf_counter() - start)
            network[name].append(prediction.timings["network"])
            outputs[name] = prediction
    first, second = outputs["deepmedic"], outputs["deepmedic-nchw"]
    difference = float(np.abs(first.probabilities - second.probabilities).max())
    agreement = float(np.mean(np.asarray(first.labels.array) == np.asarray(second.labels.array)))
    best = {name: min(values) for name, values in seconds.items()}
    best_network = {name: min(values) for name, values in network.items()}
    rows = [
        ["UNet, predict (no read/write)", f"{best['unet']:.2f}", f"{best_network['unet']:.2f}", "1.00x"],
        ["DeepMedic, channels-last", f"{best['deepmedic']:.2f}", f"{best_network['deepmedic']:.2f}",
         f"{best['deepmedic'] / best['unet']:.2f}x"],
        ["DeepMedic, NCDHW (before)", f"{best['deepmedic-nchw']:.2f}", f"{best_network['deepmedic-nchw']:.2f}",
         f"{best['deepmedic-nchw'] / best['unet']:.2f}x"],
    ]
    table = (
        f"1 mm real head {list(volume.spatial_shape)}, fastest of {args.rounds} interleaved rounds\n\n"
        + markdown_table(["way", "seconds", "network seconds", "vs UNet"], rows)
        + f"\n\nchannels-last vs NCDHW: network {best_network['deepmedic-nchw'] / best_network['deepmedic']:.2f}x "
        f"faster; probabilities differ by at most {difference:.2e}, labels agree on {agreement:.5f} of voxels."
    )
    payload = {"machine": machine(), "rounds": args.rounds, "shape": list(volume.spatial_shape),
               "seconds": seconds, "network_seconds": network, "max_probability_difference": difference,
               "label_agreement": agreement, "peak_rss_mb": peak_rss_mb()}
    write_results("deepmedic_inference", payload, table)
    print(table)


if __name__ == "__main__":
    main()
