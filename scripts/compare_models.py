"""Compare brain-tissue models on the same cases (shift checks + memory), in one run.

Usage:
    .venv/bin/python scripts/compare_models.py --models models/brain-tissue-unet models/brain-tissue-deepmedic \
        --out docs/model-comparison [--quick]

Writes OUT/<model>/checks.{json,md} per model and OUT/comparison.md (summary and per-condition tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from medseg.evaluation import peak_memory  # noqa: E402
from medseg.evaluation.interleaved_timing import interleaved_seconds  # noqa: E402
from medseg.evaluation.model_comparison import ModelResults, report  # noqa: E402
from medseg.evaluation.shift_checks import (  # noqa: E402
    CheckSettings,
    _environment,
    _git_commit,
    run_checks,
    write_one_mm_head,
    write_outputs,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, type=Path, help="model folders")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true", help="one synthetic volume per kind instead of two")
    parser.add_argument("--sample", default="data/brain-tissue")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (all models in turn)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    commit = _git_commit(REPO)  # before this run writes its own outputs into the tree

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    sys.path.insert(0, str(REPO / "tests" / "models"))
    from real_scan_helpers import load_real_checks

    from medseg.inference.predictor import Predictor

    settings = CheckSettings(quick=args.quick, synth_volumes=1 if args.quick else 2, sample_dir=args.sample)
    environment = _environment()
    head_check = load_real_checks(names=["robex-t1"])[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="medseg-compare-") as temporary:
        head = write_one_mm_head(head_check, Path(temporary) / "head_1mm.nii.gz")
        for model in args.models:
            log(f"{model.name}: peak memory on a 1 mm whole head (fresh process)")
            memory = peak_memory.measure(model, head)
            log(f"{model.name}: shift checks")
            checks = run_checks(model, settings, repo=REPO, log=log)
            write_outputs(checks, args.out / model.name)
            predictor = Predictor.from_model(model)
            networks = [one.network for one in (predictor, *predictor.members)]  # an ensemble: every member's
            results.append(ModelResults(
                name=model.name, checks=checks,
                card=json.loads((model / "model_card.json").read_text(encoding="utf-8")),
                parameters=sum(p.numel() for network in networks for p in network.parameters()), memory=memory,
            ))
        log("interleaved timing on the 1 mm whole head")
        timing = interleaved_seconds(args.models, head, rounds=args.rounds, log=log)
    results = [replace(r, interleaved={"rounds": timing["rounds"], "seconds": timing["seconds"][r.name],
                                       "median": timing["median"][r.name], "ratio": timing["ratio_to_first"][r.name]})
               for r in results]
    header = (
        "# Brain-tissue models compared on the same cases\n\n"
        f"One run of `scripts/compare_models.py{' --quick' if args.quick else ''}` at git commit "
        f"{commit}: {environment['cpus']} CPUs, torch threads {environment['torch_threads']}, load "
        f"average at start {environment['load_average_at_start'][0]:.1f} (the CPU was shared: times are upper "
        f"bounds); {time.perf_counter() - start:.0f} s. Per-model tables: `<model>/checks.md`."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "comparison.md"
    path.write_text(report(results, header), encoding="utf-8")
    (args.out / "interleaved_timing.json").write_text(json.dumps(timing, indent=2) + "\n", encoding="utf-8")
    print(path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
