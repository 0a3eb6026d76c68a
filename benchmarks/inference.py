"""Inference benchmark: medseg's Predictor (default settings) against plain MONAI sliding windows, in one run.

Baseline: the same preprocessing, then MONAI's ``sliding_window_inference`` (roi 96^3, overlap 0.25,
Gaussian blending, sw_batch_size 2) under ``torch.inference_mode()`` and the argmax. medseg:
``Predictor.predict(volume)`` with its defaults (everything ``medseg predict`` does: preprocessing,
windows, probabilities, labels, uncertainty, QC). Networks: the shipped brain model
(``models/brain-tissue-unet``, or the preset with random weights when it is missing) and MONAI's
common default UNet (channels 16-256, strides 2, 2 residual units) with seeded random weights.
Input: a real T1 head from the bundled sample, stretched to fill ~80 % of each axis of the volume
(background around it, as in a scan), on a 2 mm RAS grid (the network's grid: no resampling).

Every pass runs in a fresh subprocess (so peak RSS is its own), baseline and medseg alternate
(ABAB...), each process first warms up on a 128^3 volume (oneDNN primitives, the onnxruntime export).
Figures: median seconds per volume, peak RSS, windows, the convolutions' achieved GFLOP/s
(``FlopCounterMode`` FLOPs of one window x windows / network seconds) as a fraction of the
``torch.mm`` 4096^2 rate measured in the same run, and the Dice agreement of the masks per class.

Usage:
    python benchmarks/inference.py [--quick] [--repeats 3] [--variants] [--big]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ensure_root_on_path, machine, markdown_table, matmul_gflops, peak_rss_mb, write_results  # noqa: E402

ensure_root_on_path()

SHAPES = ((128, 128, 128), (256, 256, 128), (512, 512, 200))
BIG_SHAPE = (512, 512, 1000)
BASELINE = {"roi": (96, 96, 96), "overlap": 0.25, "mode": "gaussian", "sw_batch_size": 2}
REFERENCE_NETWORK = {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2}
SAMPLE_IMAGE = ROOT / "data" / "brain-tissue" / "imagesTs" / "brain_010.nii.gz"


# ----------------------------------------------------------------------------- inputs and models
def sample_head() -> np.ndarray:
    """The bundled sample's T1 head (2 mm; an ellipsoid phantom without the sample data)."""
    if SAMPLE_IMAGE.is_file():
        import nibabel as nib

        return np.asarray(nib.load(SAMPLE_IMAGE).dataobj, dtype=np.float32)
    grid = np.mgrid[-1:1:64j, -1:1:80j, -1:1:56j]
    radius = np.sqrt((grid**2).sum(axis=0))
    return np.where(radius < 0.9, 100.0 + 60.0 * np.cos(radius * 12.0), 0.0).astype(np.float32)


def head_volume(shape: tuple[int, int, int], layout: str = "tiled") -> Any:
    """A (1, *shape) T1 volume on a 2 mm RAS grid (the brain model's grid: no resampling).

    ``"tiled"``: copies of the sample head at their own scale fill the volume (in-distribution content
    everywhere, as a scan fills its field of view; the foreground crop saves next to nothing).
    ``"centred"``: one head in the middle of a larger field of view (background around it).
    """
    from medseg.types import Volume

    head = np.pad(sample_head(), 6)
    if layout == "tiled":
        reps = [-(-n // h) for n, h in zip(shape, head.shape)]
        array = np.tile(head, reps)[: shape[0], : shape[1], : shape[2]].copy()
    else:
        array = np.zeros(shape, dtype=np.float32)
        head = head[: shape[0], : shape[1], : shape[2]]
        starts = [(n - h) // 2 for n, h in zip(shape, head.shape)]
        array[tuple(slice(s, s + h) for s, h in zip(starts, head.shape))] = head
    return Volume(array[None].astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), ("T1",))


def ct_volume(shape: tuple[int, int, int]) -> Any:
    """A CT-like body phantom in HU (air -1000, body 40, organs), 0.8 x 0.8 x 2.5 mm (the CT preset's grid)."""
    from medseg.types import Volume

    i, j = np.ogrid[: shape[0], : shape[1]]
    ci, cj = shape[0] / 2, shape[1] / 2
    body = ((i - ci) / (0.42 * shape[0])) ** 2 + ((j - cj) / (0.3 * shape[1])) ** 2 < 1
    liver = ((i - ci * 0.8) / (0.15 * shape[0])) ** 2 + ((j - cj) / (0.12 * shape[1])) ** 2 < 1
    plane = np.where(body, 40.0, -1000.0).astype(np.float32)
    plane[liver] = 90.0
    array = np.empty(shape, dtype=np.int16)
    for k in range(shape[2]):
        array[:, :, k] = plane + 20.0 * np.sin(k / 25.0)
    return Volume(array[None], np.diag([0.8, 0.8, 2.5, 1.0]), ("CT",))


def model_folders(root: Path) -> dict[str, Path]:
    """The brain model folder and a copy with MONAI's common default UNet (random weights, seed 0)."""
    import torch
    import yaml

    from medseg.config import ExperimentConfig, load_config
    from medseg.inference.model_card import ModelCard, default_colors, write_card_text
    from medseg.networks import build_network

    trained = ROOT / "models" / "brain-tissue-unet"
    folders: dict[str, Path] = {}
    if (trained / "weights.pt").is_file():
        folders["brain"] = trained
    else:  # the preset, untrained: timings hold, Dice agreement says less
        folder = root / "brain-preset"
        folder.mkdir()
        data = yaml.safe_load((ROOT / "models" / "presets" / "brain-tissue-unet.yaml").read_text())
        data["data"]["dataset_json"] = ""
        torch.manual_seed(0)
        torch.save(build_network(load_config(ExperimentConfig, data).network).state_dict(), folder / "weights.pt")
        (folder / "model.yaml").write_text(yaml.safe_dump(data))
        card = ModelCard(name="brain-preset", class_names=("background", "CSF", "gray matter", "white matter"),
                         colors=default_colors(4), modalities=("T1",), network="unet")
        (folder / "model_card.json").write_text(write_card_text(card))
        folders["brain"] = folder
    reference = root / "monai-unet-16-256"
    reference.mkdir()
    data = yaml.safe_load((folders["brain"] / "model.yaml").read_text())
    data["network"].update(REFERENCE_NETWORK)
    torch.manual_seed(0)
    torch.save(build_network(load_config(ExperimentConfig, data).network).state_dict(), reference / "weights.pt")
    (reference / "model.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(folders["brain"] / "model_card.json", reference)
    folders["monai-unet-16-256"] = reference
    return folders


def ct_model_folder(root: Path) -> Path:
    """The CT preset with random weights (seed 0), for the 512x512x1000 memory run."""
    import torch
    import yaml

    from medseg.config import ExperimentConfig, load_config
    from medseg.inference.model_card import ModelCard, default_colors, write_card_text
    from medseg.networks import build_network

    folder = root / "ct-preset"
    folder.mkdir()
    data = yaml.safe_load((ROOT / "models" / "presets" / "ct-phantom-unet.yaml").read_text())
    data["data"]["dataset_json"] = ""
    torch.manual_seed(0)
    torch.save(build_network(load_config(ExperimentConfig, data).network).state_dict(), folder / "weights.pt")
    (folder / "model.yaml").write_text(yaml.safe_dump(data))
    card = ModelCard(name="ct-preset", class_names=("background", "liver", "kidney", "lesion"),
                     colors=default_colors(4), modalities=("CT",), network="unet")
    (folder / "model_card.json").write_text(write_card_text(card))
    return folder


# ----------------------------------------------------------------------------- one pass (child process)
def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration once (after a 128^3 warm-up) and report seconds, RSS, windows; save the mask."""
    import torch
    from monai.inferers import sliding_window_inference

    from medseg.inference.predictor import Predictor, window_count
    from medseg.inference.preprocess import preprocess_volume
    from medseg.windows import whole_volume
    from medseg.windows.plans import divisor

    shape = tuple(spec["shape"])
    big = spec.get("ct", False)
    volume = ct_volume(shape) if big else head_volume(shape, spec.get("layout", "tiled"))
    warm = head_volume((128, 128, 128)) if not big else None
    # The MONAI rows run one network; so does medseg here (an ensemble folder's own network, ensemble=False).
    predictor = Predictor.from_model(spec["model"], **{"ensemble": False, **spec.get("options", {})})
    result: dict[str, Any] = {}
    if spec["method"] in ("monai", "monai-bf16", "floor"):
        network = predictor.model.build_network()  # unfused, as a MONAI user has it
        autocast = spec["method"] != "monai"

        def run(item: Any) -> tuple[np.ndarray, float]:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                image = preprocess_volume(item, predictor.config)
                mark = time.perf_counter()
                if spec["method"] == "floor":  # one whole-volume forward
                    step = divisor(predictor.config.network, predictor.geometry)
                    logits = whole_volume(image.as_tensor(), network, step).logits()[None]
                else:
                    logits = sliding_window_inference(
                        image.as_tensor()[None], roi_size=BASELINE["roi"], sw_batch_size=BASELINE["sw_batch_size"],
                        predictor=network, overlap=BASELINE["overlap"], mode=BASELINE["mode"],
                    )
                network_seconds = time.perf_counter() - mark
                return logits[0].float().argmax(dim=0).to(torch.uint8).numpy(), network_seconds

        run(warm)
        start = time.perf_counter()
        mask, network_seconds = run(volume)
        result["seconds"] = time.perf_counter() - start
        result["network_seconds"] = network_seconds
        floor = spec["method"] == "floor"
        result["windows"] = 1 if floor else window_count(shape, BASELINE["roi"], BASELINE["overlap"])
    else:
        if warm is not None:
            predictor.predict(warm)
        start = time.perf_counter()
        prediction = predictor.predict(volume)
        result["seconds"] = time.perf_counter() - start
        result["network_seconds"] = prediction.timings["network"]
        result["timings"] = {k: round(v, 3) for k, v in prediction.timings.items()}
        mask = prediction.labels.array
        del prediction
        with torch.inference_mode():
            image = preprocess_volume(volume, predictor.config)
        plan = predictor.plan_for(tuple(image.shape[1:]))
        result["plan"] = plan.kind
        result["windows"] = plan.forwards
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if spec.get("mask"):
        np.save(spec["mask"], mask)
    return result


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``child(spec)`` in a fresh interpreter; its last stdout line is the JSON result."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec['method']} {spec['shape']}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the run (parent)
def flops_per_window(model_dir: Path) -> float:
    """FLOPs of the network's convolutions on one 96^3 window (``torch.utils.flop_counter``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medseg.inference.model_folder import load_model_folder

    network = load_model_folder(model_dir).build_network()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.zeros((1, 1, *BASELINE["roi"])))
    return float(counter.get_total_flops())


def dice_per_class(a: np.ndarray, b: np.ndarray, classes: int) -> list[float]:
    """Dice of masks ``a`` and ``b`` per class 0..classes-1 (1.0 where both lack the class)."""
    scores = []
    for c in range(classes):
        x, y = a == c, b == c
        total = int(x.sum()) + int(y.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((x & y).sum()) / total)
    return scores


def measure(name: str, model: Path, shape: tuple[int, ...], methods: dict[str, dict[str, Any]], repeats: int,
            folder: Path) -> dict[str, Any]:
    """ABAB runs of each method; medians, RSS, windows and the masks' Dice against the first method."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    masks = {m: folder / f"{name}-{'x'.join(map(str, shape))}-{m}.npy" for m in methods}
    for _ in range(repeats):
        for method, options in methods.items():
            kind = method if method in ("monai", "monai-bf16", "floor") else "medseg"
            spec = {"model": str(model), "shape": list(shape), "method": kind,
                    "options": options, "mask": str(masks[method])}
            runs[method].append(run_child(spec))
            print(f"  {name} {'x'.join(map(str, shape))} {method}: {runs[method][-1]['seconds']:.2f} s", flush=True)
    baseline = np.load(masks["monai"])
    row: dict[str, Any] = {"network": name, "shape": list(shape)}
    for method, items in runs.items():
        row[method] = {
            "seconds_median": round(statistics.median(r["seconds"] for r in items), 3),
            "seconds": [round(r["seconds"], 3) for r in items],
            "network_seconds_median": round(statistics.median(r["network_seconds"] for r in items), 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in items),
            "windows": items[-1]["windows"],
            **({"timings": items[-1]["timings"], "plan": items[-1]["plan"]}
               if "timings" in items[-1] else {}),
        }
        if method != "monai":
            dice = dice_per_class(baseline, np.load(masks[method]), 4)
            row[method]["dice_vs_monai"] = [round(d, 4) for d in dice]
            row[method]["speedup"] = round(row["monai"]["seconds_median"] / row[method]["seconds_median"], 2)
    return row


def main() -> None:
    """Parse arguments, run the cases, print the table, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 512x512x200")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", action="store_true", help="also medseg with engine torch / without the crop")
    parser.add_argument("--big", action="store_true", help="also a 512x512x1000 CT (medseg only: time and peak RSS)")
    parser.add_argument("--networks", nargs="+", default=["brain", "monai-unet-16-256"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    facts = machine()
    print(f"load average {facts['load_average']}", flush=True)
    matmul = [matmul_gflops()]
    rows, big = [], None
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        models = model_folders(folder)
        flops = {name: flops_per_window(models[name]) for name in args.networks}
        methods: dict[str, dict[str, Any]] = {"monai": {}, "monai-bf16": {}, "floor": {}, "medseg": {}}
        shapes = SHAPES[:2] if args.quick else SHAPES
        for name in args.networks:
            for shape in shapes:
                chosen = dict(methods)
                if args.variants and shape == (256, 256, 128):
                    chosen.update({"medseg-fp32-onnxruntime": {"precision": "float32"},
                                   "medseg-fp32-torch": {"precision": "float32", "engine": "torch"},
                                   "medseg-windows": {"window_plan": "windows"}})
                row = measure(name, models[name], shape, chosen, args.repeats, folder)
                for method in chosen:
                    part = row[method]
                    part["gflops"] = round(part["windows"] * flops[name] / part["network_seconds_median"] / 1e9, 1)
                rows.append(row)
        matmul.append(matmul_gflops())
        if args.big:
            spec = {"model": str(ct_model_folder(folder)), "shape": list(BIG_SHAPE), "method": "medseg", "ct": True}
            big = run_child(spec)
            print(f"  CT 512x512x1000: {big['seconds']:.1f} s, peak RSS {big['peak_rss_mb']:.0f} MB", flush=True)
    rate = statistics.median(matmul)
    for row in rows:
        for part in row.values():
            if isinstance(part, dict):
                part["fraction_of_matmul"] = round(part["gflops"] / rate, 3)
    payload = {"benchmark": "inference", "machine": facts, "load_average_end": list(machine()["load_average"]),
               "matmul_gflops": round(rate, 1), "matmul_runs": [round(m, 1) for m in matmul],
               "flops_per_96_window": flops, "baseline": BASELINE, "repeats": args.repeats, "rows": rows,
               "ct_512x512x1000": big}
    table = markdown(rows, rate)
    print(table)
    print(f"wrote {write_results('inference', payload, table)}")


def markdown(rows: list[dict[str, Any]], rate: float) -> str:
    """The Markdown table: one line per network, volume and method."""
    lines = []
    for row in rows:
        for method, part in row.items():
            if not isinstance(part, dict):
                continue
            dice = part.get("dice_vs_monai")
            lines.append([
                row["network"], "x".join(map(str, row["shape"])), method, f"{part['seconds_median']:.2f}",
                f"{part.get('speedup', 1.0):.2f}x", f"{part['peak_rss_mb']:.0f}", part["windows"],
                f"{part['gflops']:.0f} ({100 * part['fraction_of_matmul']:.0f} %)",
                "-" if dice is None else f"{min(dice):.4f}",
            ])
    headers = ["network", "volume", "method", "s / volume (median)", "speed-up", "peak RSS MB", "windows",
               f"conv GFLOP/s (of {rate:.0f} matmul)", "min Dice vs MONAI"]
    return markdown_table(headers, lines)


if __name__ == "__main__":
    main()
