"""`medseg train`: start a run from a config, or resume one.

    medseg train --config PRESET|FILE --out RUN_DIR [--set key=value ...] [--max-epochs N] [--init-from CKPT]
    medseg train --resume RUN_DIR [--max-epochs N]

PRESET is a bundled preset's name (`medseg models`); its relative paths are taken as if it sat in
``./models/presets/``, so ``brain-tissue-unet`` trains on ``./data/brain-tissue``. A bundled preset
(by name or path) whose bundled sample is missing gets it built first (``medseg sample``); any other
config whose data set is a missing bundled sample stops with the command that builds it.

Multi-process: ``torchrun --nproc_per_node N -m medseg train ...`` (same arguments).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from medseg_cli.config_arg import HELP as CONFIG_HELP, load_config_arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a segmentation network from a config (or resume a run)",
        description="Train on a Decathlon data set. The run folder gets the resolved config, seed, "
        "package versions, patient split, CSV log, plots and checkpoints (last.pt, best.pt). "
        "Relative paths in the config file are relative to the file's folder (for a bundled preset given by "
        "name: ./models/presets/, so its data go to ./data/NAME). A bundled preset's missing sample is built first.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="PRESET|FILE", help=CONFIG_HELP)
    source.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--out", type=Path, help="run folder to create (with --config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.max_epochs=5 (repeatable)")
    parser.add_argument("--max-epochs", type=int, help="total epochs (overrides train.max_epochs)")
    parser.add_argument("--init-from", type=Path, metavar="CKPT",
                        help="copy matching weights from a checkpoint (transfer learning)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, then print where the run is and how it ended."""
    from medseg.errors import ConfigError
    from medseg.training.loop import resume, train
    from medseg.training.run_folder import record_command

    if args.resume is not None:
        if args.out or args.set or args.init_from:
            raise ConfigError("--resume takes only --max-epochs; the run's own config.yaml is used")
        result = resume(args.resume, max_epochs=args.max_epochs)
    else:
        if args.out is None:
            raise ConfigError("--out RUN_DIR is required with --config")
        overrides = list(args.set)
        if args.max_epochs is not None:
            overrides.append(f"train.max_epochs={args.max_epochs}")
        if args.init_from is not None:
            overrides.append(f"train.finetune.init_from={args.init_from.resolve()}")
        config = load_config_arg(args.config, overrides)
        record_command(args.out, ["medseg", *args.argv])
        result = train(config, args.out)
    if result.rank != 0:
        return 0  # torchrun: one report, from the process that validated
    dice = "n/a" if math.isnan(result.best_dice) else f"{result.best_dice:.4f}"
    print(
        f"run {result.run_dir}: {result.epochs} epochs ({result.stop_reason}), best validation Dice {dice} "
        f"at epoch {result.best_epoch}, {result.seconds_per_iteration:.3f} s/iteration"
    )
    return 0

