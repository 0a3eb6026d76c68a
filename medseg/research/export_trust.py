"""Which TorchScript/ONNX exports may be loaded: those this user's medseg made, or ones trusted by hand.

Loading a TorchScript file runs code (``__setstate__`` of scripted classes runs inside
``torch.jit.load``), and an ONNX graph is a program for onnxruntime, so an export is executable
content. A model folder's own ``export.json`` cannot vouch for it: whoever wrote the folder
wrote that file too. Trust therefore lives outside the folder:

* ``medseg export`` records the sha256 of every file it writes in the user's trust store,
  ``~/.config/medseg/trusted-exports.json`` (or the ``store`` passed in);
* ``load_model_export`` loads an export only when its content's sha256 is in that store, or
  when the caller passes ``trust=True`` (``medseg predict --trust-export``: the user vouches for
  this folder, e.g. one received from a colleague after checking it).

Weights (``weights.pt``) need no trust: they are read with ``torch.load(weights_only=True)``.
The store is a JSON object ``{sha256: {"file", "time"}}`` written atomically under an flock.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from medseg.io.atomic import atomic_write_text

STORE_NAME = "trusted-exports.json"


def default_store() -> Path:
    """The user's trust store: ``~/.config/medseg/trusted-exports.json``."""
    return Path.home() / ".config" / "medseg" / STORE_NAME


def _read(store: Path) -> dict[str, dict]:
    try:
        content = json.loads(store.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # an unreadable store trusts nothing
    return content if isinstance(content, dict) else {}


def is_trusted(sha256: str, store: Path | None = None) -> bool:
    """True when ``sha256`` was recorded in the trust store."""
    return sha256 in _read(store or default_store())


def record_trusted(sha256: str, file: str | Path, store: Path | None = None) -> Path:
    """Add an export's sha256 to the trust store (created with the user's umask); returns the store."""
    store = store or default_store()
    store.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(store.parent / f".{store.name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # short: other exports wait for the read-modify-write
        entries = _read(store)
        entries[sha256] = {"file": str(Path(file).resolve()), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(store, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    finally:
        os.close(handle)
    return store
