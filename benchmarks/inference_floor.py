"""Inference against MONAI fp32, MONAI + bf16 autocast and the whole-volume floor, in one process, scored on labels.

The input is real content: a sample subject's T1 and its tissue labels (2 mm, the network's grid: no
resampling), tiled 2 x 2 x 2 (``--tiles``; 166 x 202 x 118 voxels for brain_010). Ways, interleaved round by round
(the fastest of each is reported: the machine is shared, the fastest run is the least disturbed):

* ``monai-fp32``: preprocessing, MONAI ``sliding_window_inference`` (roi 96^3, overlap 0.25, Gaussian,
  sw_batch_size 2) under ``torch.inference_mode()``, the argmax;
* ``monai-bf16``: the same inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the one-line alternative);
* ``floor``: preprocessing, one bfloat16 whole-volume forward of the unchanged network, the argmax;
* ``medseg``: ``Predictor.predict(volume)`` with its defaults (everything ``medseg predict`` does:
  preprocessing, the model's window plan, probabilities, labels, uncertainty, QC) except the card's
  largest-component clean-up, which would keep one brain of the 8 tiled heads;
* variants (``--variants``): ``medseg`` with ``window_plan="windows"`` (the previous default plan), and
  without the card's intensity refinement (``medseg-no-refine``, when the card has one).

Scores: mean Dice over the foreground classes against the tiled labels, and the smallest per-class Dice
against ``monai-fp32``'s mask. Usage::

    nice -n 19 python benchmarks/inference_floor.py [--rounds 3] [--model models/brain-tissue-unet] [--variants]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, write_results  # noqa: E402

ensure_root_on_path()

SAMPLE = ROOT / "data" / "brain-tissue"
BASELINE = {"roi": (96, 96, 96), "overlap": 0.25, "mode": "gaussian", "sw_batch_size": 2}


def sample_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A sample subject's T1 (I, J, K) float32 and labels (I, J, K) uint8 (test split, else training split)."""
    import nibabel as nib

    for images, labels in (("imagesTs", "labelsTs"), ("imagesTr", "labelsTr")):
        image, label = SAMPLE / images / f"{name}.nii.gz", SAMPLE / labels / f"{name}.nii.gz"
        if image.is_file() and label.is_file():
            return (np.asarray(nib.load(image).dataobj, dtype=np.float32),
                    np.asarray(nib.load(label).dataobj).astype(np.uint8))
    raise SystemExit(f"{SAMPLE}: no image and label named {name}; build the sample with "
                     "`medseg sample datasets/brain-tissue.yaml --out data/brain-tissue`")


def dice(a: np.ndarray, b: np.ndarray, classes: int) -> list[float]:
    """Dice per class 0..classes-1 (1.0 where both lack the class)."""
    scores = []
    for c in range(classes):
        x, y = a == c, b == c
        total = int(x.sum()) + int(y.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((x & y).sum()) / total)
    return scores


def main() -> None:
    """Run the rounds, print the table, write ``results/inference_floor.json`` and ``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "brain-tissue-unet"))
    parser.add_argument("--subject", default="brain_010")
    parser.add_argument("--tiles", type=int, nargs=3, default=[2, 2, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()

    import torch
    from monai.inferers import sliding_window_inference

    from medseg.inference.model_folder import load_model_folder
    from medseg.inference.predictor import Predictor
    from medseg.inference.preprocess import preprocess_volume
    from medseg.types import Volume
    from medseg.windows import whole_volume
    from medseg.windows.plans import divisor

    facts = machine()
    image, label = sample_pair(args.subject)
    image, label = np.tile(image, args.tiles), np.tile(label, args.tiles)
    volume = Volume(image[None].copy(), np.diag([2.0, 2.0, 2.0, 1.0]), ("T1",))
    # The tiled input holds 8 heads: the card's largest-component clean-up would keep one brain of 8, so it is
    # off here (MONAI's rows have none either); everything else is the default.
    folder = load_model_folder(args.model)
    # The floor and MONAI run one network: so does medseg (an ensemble folder's own network alone).
    folder = replace(folder, members=(), card=replace(folder.card, ensemble=(), postprocess=replace(
        folder.card.postprocess, largest_component=False, largest_foreground=False)))
    predictors = {"medseg": Predictor(folder)}
    if args.variants:
        predictors["medseg-windows"] = Predictor(folder, window_plan="windows")
        if folder.card.postprocess.refine_classes:
            predictors["medseg-no-refine"] = Predictor(folder, intensity_refinement=False)
    reference = predictors["medseg"]
    network = reference.model.build_network()  # unfused, as a MONAI user has it
    classes = reference.config.network.out_channels

    def monai(autocast: bool) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            batch = preprocess_volume(volume, reference.config).as_tensor()[None]
            logits = sliding_window_inference(batch, roi_size=BASELINE["roi"], sw_batch_size=BASELINE["sw_batch_size"],
                                              predictor=network, overlap=BASELINE["overlap"], mode=BASELINE["mode"])
            return logits[0].float().argmax(0).to(torch.uint8).numpy()

    def floor() -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            values = preprocess_volume(volume, reference.config).as_tensor()
            step = divisor(reference.config.network, reference.geometry)
            return whole_volume(values, network, step).logits().argmax(0).to(torch.uint8).numpy()

    ways: dict[str, Any] = {"monai-fp32": lambda: monai(False), "monai-bf16": lambda: monai(True), "floor": floor}
    for name, predictor in predictors.items():
        ways[name] = lambda p=predictor: p.predict(volume).labels.array
    plan = reference.plan_for(tuple(preprocess_volume(volume, reference.config).shape[1:]))
    ways["monai-fp32"]()  # warm-up of oneDNN primitives for every way (first calls build them)
    for way, run in ways.items():
        if way != "monai-fp32":
            run()
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    masks: dict[str, np.ndarray] = {}
    for round_index in range(args.rounds):
        for way, run in ways.items():
            start = time.perf_counter()
            masks[way] = run()
            seconds[way].append(time.perf_counter() - start)
            print(f"round {round_index + 1} {way}: {seconds[way][-1]:.2f} s", flush=True)
    fastest = {way: min(values) for way, values in seconds.items()}
    rows, payload_rows = [], []
    for way in ways:
        to_labels = dice(masks[way], label, classes)[1:]
        to_monai = dice(masks[way], masks["monai-fp32"], classes)
        row = {"way": way, "seconds_fastest": round(fastest[way], 3), "seconds": [round(s, 3) for s in seconds[way]],
               "vs_monai_fp32": round(fastest["monai-fp32"] / fastest[way], 2),
               "vs_monai_bf16": round(fastest["monai-bf16"] / fastest[way], 2),
               "dice_labels": [round(d, 4) for d in to_labels], "mean_dice_labels": round(float(np.mean(to_labels)), 4),
               "min_dice_vs_monai": round(min(to_monai), 4)}
        payload_rows.append(row)
        rows.append([way, f"{row['seconds_fastest']:.2f}", f"{row['vs_monai_fp32']:.2f}x",
                     f"{row['vs_monai_bf16']:.2f}x", f"{row['mean_dice_labels']:.3f}",
                     f"{row['min_dice_vs_monai']:.4f}"])
    table = markdown_table(["way", "s (fastest)", "vs MONAI fp32", "vs MONAI + bf16", "mean Dice vs labels",
                            "min Dice vs MONAI fp32"], rows)
    print(table)
    payload = {"benchmark": "inference_floor", "machine": facts, "load_average_end": list(machine()["load_average"]),
               "model": args.model, "subject": args.subject, "shape": list(image.shape), "rounds": args.rounds,
               "baseline": BASELINE, "plan": {"kind": plan.kind, "window": list(plan.window), "forwards": plan.forwards,
                                              "estimated_mb": round(plan.estimated_bytes / 2**20)},
               "folded_norms": reference.folded_norms, "rows": payload_rows}
    print(f"wrote {write_results('inference_floor', payload, table)}")


if __name__ == "__main__":
    main()
