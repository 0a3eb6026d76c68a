"""Checkpoints: plain tensors and data only (loadable with ``weights_only=True``), written atomically.

A checkpoint is a dict:
    format        "medseg-checkpoint/1"
    config        the resolved ExperimentConfig as plain data
    epoch         epochs completed
    global_step   optimiser steps taken
    model         the network's state_dict (never the DDP wrapper's)
    optimizer, scheduler, scaler   their state_dicts (scaler: {} without AMP)
    rng           {"python": list, "numpy": {...}, "torch": uint8 tensor, "cuda": [tensors]}
    history       one dict of floats per epoch (what the CSV log and the plots show)
    early_stop    {"best_dice": float, "best_epoch": int}
    class_names   label names, background first
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import InputError
from medseg.io.atomic import atomic_path
from medseg.networks.weights import torch_load_safely

CHECKPOINT_FORMAT = "medseg-checkpoint/1"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    final = Path(path)
    with atomic_path(final) as temp:
        torch.save(dict(state, format=CHECKPOINT_FORMAT), temp)
    return final


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files a killed run left mid-write (``atomic_path``'s ``.NAME.tmp-XXXX.pt``); returns them.

    Call only when no other process writes checkpoints into ``folder`` (at the start of a run).
    """
    stale = sorted(Path(folder).glob(".*.tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        InputError: missing, truncated, holding pickled objects beyond tensors and data (refused),
            or not a medseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found", "give the path of a .pt file in a run's checkpoints/ folder")
    state = torch_load_safely(path, "checkpoint", "use another checkpoint written by `medseg train` "
                              "from a source you trust")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a medseg checkpoint (no format '{CHECKPOINT_FORMAT}')")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as lists and tensors."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the states captured by ``capture_rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
