"""Pseudonymous, stable case ids for batch outputs.

A case id is ``case_`` + the first 10 hex digits of sha256 over the scan's path relative
to the batch input and its SeriesInstanceUID (empty for image files). The same scan under
the same input gives the same id on every run (so reruns find their outputs), and the id
says nothing about the patient: no tag value ever becomes part of an output path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import InputError

CASE_PREFIX = "case_"
HASH_DIGITS = 10


def relative_input(path: str | Path, root: str | Path) -> str:
    """``path`` relative to the batch input ``root``, POSIX style.

    A file given as the input itself is named by its file name; the input folder itself is ``"."``.
    """
    path, root = Path(path), Path(root)
    if root.is_file():
        return root.name
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return path.as_posix()


def case_id(relative_path: str, series_uid: str = "") -> str:
    """``case_`` + 10 hex digits of sha256(relative path, NUL, SeriesInstanceUID)."""
    digest = hashlib.sha256(f"{relative_path}\0{series_uid}".encode()).hexdigest()
    return CASE_PREFIX + digest[:HASH_DIGITS]


def check_unique(ids: Sequence[str], where: str | Path) -> None:
    """Refuse a batch whose case ids collide (40 bits: practically never, but never silently)."""
    seen: set[str] = set()
    for identifier in ids:
        if identifier in seen:
            raise InputError(where, f"two scans map to the same case id {identifier}",
                             "run the colliding scans in separate batches")
        seen.add(identifier)
