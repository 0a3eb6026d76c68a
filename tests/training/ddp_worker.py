"""Started by torchrun in test_distributed.py: `medseg train` as the CLI runs it, then each rank saves
the weights it holds (rank 1 writes no checkpoint of its own), to compare ranks with each other and
with a single-process run.

Usage: python ddp_worker.py WEIGHTS_DIR -- MEDSEG_TRAIN_ARGS...
Writes WEIGHTS_DIR/rank{RANK}_initial.pt (as built, before DDP's broadcast) and WEIGHTS_DIR/rank{RANK}.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn


def main(argv: list[str]) -> int:
    """Record the network the loop builds, run the CLI, save ``WEIGHTS_DIR/rank{RANK}.pt``."""
    from medseg_cli.main import main as medseg_main

    from medseg.training import loop

    weights_dir, args = Path(argv[0]), argv[argv.index("--") + 1:]
    weights_dir.mkdir(parents=True, exist_ok=True)
    built: list[nn.Module] = []
    build = loop.build_network

    def recording_build(config):  # the loop's own builder, remembered
        network = build(config)
        built.append(network)
        torch.save(network.state_dict(), weights_dir / f"rank{os.environ['RANK']}_initial.pt")
        return network

    loop.build_network = recording_build
    status = medseg_main(args)
    torch.save(built[0].state_dict(), weights_dir / f"rank{os.environ['RANK']}.pt")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
