"""The storage node's disk budget (``medseg listen --max-disk-gb``) and its hashed names.

The budget covers everything under the node's folder (received objects, outputs, the SEGs to
send, the queue). Bytes in use are counted once by walking the folder, then kept up to date as
objects arrive (``add``) and recounted after the node deletes files (``recount``); an object that
would take the folder over the budget is refused with a DICOM failure status by the SCP, and the
sending PACS retries later, when sent series have freed their space.

File and folder names never carry a tag value: a series folder is named by ``series_key``
(hashed SeriesInstanceUID), an object by ``instance_name`` (hashed SOPInstanceUID).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

GIB = 1024 ** 3


def series_key(series_uid: str) -> str:
    """16 hex digits of sha256 over the SeriesInstanceUID: the series' name in folders, logs and the queue."""
    return hashlib.sha256(b"medseg-series\0" + series_uid.encode("ascii", "replace")).hexdigest()[:16]


def instance_name(sop_instance_uid: str) -> str:
    """The file name of a received object: ``<20 hex digits of sha256 over its SOPInstanceUID>.dcm``."""
    return hashlib.sha256(b"medseg-instance\0" + sop_instance_uid.encode("ascii", "replace")).hexdigest()[:20] + ".dcm"


def folder_bytes(folder: Path) -> int:
    """Bytes of every regular file under ``folder`` (links not followed; vanished files skipped)."""
    total = 0
    stack = [Path(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class DiskBudget:
    """Bytes in use under ``folder`` against ``max_bytes`` (None: no limit).

    Args:
        folder: the node's folder.
        max_bytes: the budget in bytes, or None.
    """

    def __init__(self, folder: Path, max_bytes: int | None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._used = folder_bytes(self.folder)

    @property
    def used(self) -> int:
        """Bytes in use as last counted."""
        with self._lock:
            return self._used

    def fits(self, size: int) -> bool:
        """True when ``size`` more bytes stay within the budget."""
        with self._lock:
            return self.max_bytes is None or self._used + size <= self.max_bytes

    def add(self, size: int) -> None:
        """``size`` bytes were written."""
        with self._lock:
            self._used += size

    def recount(self) -> int:
        """Walk the folder again (after deletions or outputs); the bytes in use."""
        used = folder_bytes(self.folder)
        with self._lock:
            self._used = used
        return used
