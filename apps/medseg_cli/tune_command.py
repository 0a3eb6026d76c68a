"""`medseg tune`: hyperparameter search with Optuna on the validation split.

    medseg tune --config FILE --space SPACE.yaml --trials N --out DIR [--epochs E] [--storage URL]
                [--study NAME] [--set key=value ...] [--progress]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="search hyperparameters (lr, batch, patch, loss, width, dropout) on the validation split",
        description="Each trial trains in DIR/trials/<n>/ and is scored by its best mean validation Dice; "
        "unpromising trials are pruned (MedianPruner). The test split is never read. Writes DIR/results.csv, "
        "results.md, dice_vs_params.png, best.yaml (a ready preset) and search.json. Batch size and learning "
        "rate move together: a trial trains at lr * batch_size / base_batch_size (linear scaling).",
    )
    parser.add_argument("--config", type=Path, required=True, help="base experiment YAML")
    parser.add_argument("--space", type=Path, required=True, metavar="SPACE.yaml",
                        help="search space (e.g. models/presets/brain-tissue-search.yaml)")
    parser.add_argument("--trials", type=int, required=True, metavar="N",
                        help="finished trials the study runs to (a rerun continues the study)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="search folder")
    parser.add_argument("--epochs", type=int, metavar="E",
                        help="epochs per trial (the search budget; default: the config's train.max_epochs)")
    parser.add_argument("--storage", default="", metavar="URL",
                        help="Optuna storage URL shared by several machines (default: sqlite DIR/study.db)")
    parser.add_argument("--study", default="medseg-tune", metavar="NAME", help="study name in the storage")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base config value, e.g. --set train.val_every=2 (repeatable)")
    parser.add_argument("--progress", action="store_true", help="show each trial's progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Search, printing one line per finished trial, then the best trial and the outputs."""
    from medseg.research.tune import tune

    result = tune(args.config, args.space, args.trials, args.out, storage=args.storage, study_name=args.study,
                  overrides=args.set, epochs=args.epochs, progress=args.progress,
                  report=lambda line: print(line, flush=True))
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
    print(f"study {result.storage}: {len(result.rows)} trials ({summary})")
    if result.best is None:
        print(f"no trial finished; see {result.out_dir / 'results.md'}")
        return 1
    print(f"best: trial {result.best['trial']}, validation Dice {result.best['val_dice']:.4f}; "
          f"preset {result.best_config}; table {result.out_dir / 'results.md'}")
    return 0
