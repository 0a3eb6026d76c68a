"""DeepMedic's inference against the UNet's, and against DeepMedic's earlier inference paths, in one process.

Input: a real head (ROBEX's reference T1, as `tests/models` builds it) resampled to 1 mm, 174 x 225 x 232.
Ways, interleaved round by round (the fastest of each reported: the machine may be shared):

* ``unet``: ``Predictor.predict`` with the shipped UNet (everything ``medseg predict`` does but reading
  and writing: preprocessing, the network, back to the scan's grid, refinement, clean-up, QC);
* ``deepmedic``: the same with the shipped DeepMedic (bf16 windows in channels-last layout, PReLU and
  batch norm through ``medseg.networks.channelwise``, the head's low-pathway part at low resolution);
* ``deepmedic-stock``: the same weights (and the same batch norms folded into convolutions) with PyTorch's own
  PReLU and batch norm and the head on the full-resolution concatenation;
* ``deepmedic-nchw``: the same with DeepMedic's windows in the default NCDHW layout (the code before that);
* ``network seconds``: the network pass alone (``Prediction.timings["network"]``).

Also reported: the largest difference of the ways' probabilities from ``deepmedic``'s and their label
agreement (bf16 rounding only: the same arithmetic reordered). Usage::

    python benchmarks/deepmedic_inference.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, peak_rss_mb, write_results  # noqa: E402

ensure_root_on_path()


def stock_kernels(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` (changed in place) with PyTorch's PReLU and batch norm and DeepMedic's concatenated head."""
    from medseg.networks import channelwise

    stock = {channelwise.PReLU: torch.nn.PReLU, channelwise.BatchNorm3d: torch.nn.BatchNorm3d}
    for module in list(network.modules()):
        for name, child in module.named_children():
            if type(child) in stock:
                child.__class__ = stock[type(child)]  # same parameters and buffers, stock forward
    network.split_head = False
    return network


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
        "deepmedic-stock": Predictor.from_model(ROOT / "models" / "brain-tissue-deepmedic"),
        "deepmedic-nchw": Predictor.from_model(ROOT / "models" / "brain-tissue-deepmedic", channels_last=False),
    }
    for name in ("deepmedic-stock", "deepmedic-nchw"):
        stock_kernels(predictors[name].network)
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
    reference = outputs["deepmedic"]
    differences = {
        name: (float(np.abs(reference.probabilities - outputs[name].probabilities).max()),
               float(np.mean(np.asarray(reference.labels.array) == np.asarray(outputs[name].labels.array))))
        for name in ("deepmedic-stock", "deepmedic-nchw")
    }
    best = {name: min(values) for name, values in seconds.items()}
    best_network = {name: min(values) for name, values in network.items()}
    titles = {"unet": "UNet, predict (no read/write)", "deepmedic": "DeepMedic, channels-last, channelwise kernels",
              "deepmedic-stock": "DeepMedic, channels-last, stock kernels (before)",
              "deepmedic-nchw": "DeepMedic, NCDHW, stock kernels (before that)"}
    rows = [[titles[name], f"{best[name]:.2f}", f"{best_network[name]:.2f}", f"{best[name] / best['unet']:.2f}x"]
            for name in predictors]
    table = (
        f"1 mm real head {list(volume.spatial_shape)}, fastest of {args.rounds} interleaved rounds\n\n"
        + markdown_table(["way", "seconds", "network seconds", "vs UNet"], rows)
        + "\n\n" + "\n".join(
            f"{name} vs deepmedic: network {best_network[name] / best_network['deepmedic']:.2f}x slower; "
            f"probabilities differ by at most {difference:.2e}, labels agree on {agreement:.5f} of voxels."
            for name, (difference, agreement) in differences.items()
        )
    )
    payload = {"machine": machine(), "rounds": args.rounds, "shape": list(volume.spatial_shape),
               "seconds": seconds, "network_seconds": network, "differences_from_deepmedic": differences,
               "peak_rss_mb": peak_rss_mb()}
    write_results("deepmedic_inference", payload, table)
    print(table)


if __name__ == "__main__":
    main()
