"""Completion records: a case counts as done only when its record says so and its files agree.

``OUT/<case_id>/complete.json`` is written last, atomically, after every output of the case.
It holds:

* ``input_sha256``: sha256 over the case's input files (each file's full content, in the
  order the reader uses them; for a DICOM series every slice file). Full content rather than
  header + size: a rewritten scan with the same header must not pass as done, and hashing
  runs at disk speed (a few hundred MB/s), small next to inference;
* ``model_sha256``: sha256 over every file of the model folder (weights, config, model card,
  calibration), so a retrained or recalibrated model redoes every case;
* ``options``: the settings that change the outputs (TTA, uncertainty, probabilities, ...);
* ``outputs``: ``{file name: sha256}`` of every output file, ``case.json`` included.

``is_complete`` accepts a case only when all of these match now; anything else (no record,
an unreadable record, a changed input, model or option, a missing or damaged output) means
the case is redone. A kill at any moment leaves either no record or a record whose outputs
were all written (and flushed) before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from medseg.io.atomic import atomic_write_text

LOGGER = logging.getLogger(__name__)
RECORD_NAME = "complete.json"
RECORD_FORMAT = 1
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One sha256 over several files: each file's own sha256, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(file_sha256(path).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def folder_sha256(folder: str | Path) -> str:
    """sha256 over every non-hidden file under ``folder`` (relative name and content, sorted by name)."""
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(root).parts))
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(file_sha256(path).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def write_record(case_dir: Path, *, input_sha256: str, model_sha256: str, options: Mapping[str, Any],
                 outputs: Iterable[str]) -> Path:
    """Hash the case's output files and write ``complete.json`` atomically (call it last).

    Args:
        case_dir: the case's output folder.
        input_sha256: ``files_sha256`` of the input files.
        model_sha256: ``folder_sha256`` of the model folder.
        options: output-changing settings (JSON-serialisable).
        outputs: names of the output files in ``case_dir``.
    """
    record = {
        "format": RECORD_FORMAT,
        "input_sha256": input_sha256,
        "model_sha256": model_sha256,
        "options": dict(options),
        "outputs": {name: file_sha256(case_dir / name) for name in sorted(outputs)},
    }
    return atomic_write_text(case_dir / RECORD_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_record(case_dir: Path) -> dict[str, Any] | None:
    """The case's completion record, or None when missing or unreadable."""
    path = case_dir / RECORD_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        LOGGER.info("%s: unreadable completion record (%s); the case is redone", path, error)
        return None
    return record if isinstance(record, dict) else None


def is_complete(case_dir: Path, *, input_sha256: str, model_sha256: str, options: Mapping[str, Any]) -> bool:
    """True when ``complete.json`` matches the input, model and options, and every output matches its hash."""
    record = read_record(case_dir)
    if record is None:
        return False
    expected = {"format": RECORD_FORMAT, "input_sha256": input_sha256, "model_sha256": model_sha256,
                "options": json.loads(json.dumps(dict(options)))}
    for key, value in expected.items():
        if record.get(key) != value:
            LOGGER.info("%s: %s changed since the case was done; redoing it", case_dir.name, key)
            return False
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for name, digest in outputs.items():
        path = case_dir / str(name)
        if Path(str(name)).name != name or not path.is_file() or file_sha256(path) != digest:
            LOGGER.info("%s: output %s is missing or differs from its record; redoing the case", case_dir.name, name)
            return False
    return True


def remove_record(case_dir: Path) -> None:
    """Delete the record first when a case is redone, so the folder counts as partial until it is rewritten."""
    (case_dir / RECORD_NAME).unlink(missing_ok=True)
