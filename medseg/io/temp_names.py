"""Temporary files and folders next to their destination, without process-wide side effects.

* Names: ``.<stem>.tmp-<8 hex><suffix>`` for files and ``.<name>.<8 hex><suffix>`` for folders;
  the stem is shortened (on a UTF-8 character boundary) so the whole name stays within
  ``NAME_MAX`` (255 bytes) even for a valid 250-byte destination name.
* Creation: ``os.open(O_CREAT | O_EXCL | O_NOFOLLOW, 0o666)`` and ``os.mkdir(0o777)``: the kernel
  applies the process umask (and default ACLs) itself, so nothing ever calls ``os.umask`` (which
  is process-wide: a thread writing meanwhile would get world-writable files) or ``chmod``s a
  result past the user's umask. ``O_EXCL`` never follows or reuses an existing name.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

NAME_MAX = 255
TEMP_MARK = ".tmp-"
_ATTEMPTS = 100


def _shorten(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max(0, max_bytes)].decode("utf-8", "ignore")


def temp_name(stem: str, suffix: str, mark: str = TEMP_MARK) -> str:
    """A hidden random name ``.<stem><mark><8 hex><suffix>`` of at most NAME_MAX bytes."""
    token = secrets.token_hex(4)
    fixed = len(f".{mark}{token}{suffix}".encode("utf-8", "surrogateescape"))
    return f".{_shorten(stem, NAME_MAX - fixed)}{mark}{token}{suffix}"


def create_temp_file(folder: Path, stem: str, suffix: str) -> Path:
    """Create an empty file with a fresh ``temp_name`` in ``folder`` (umask-respecting, O_NOFOLLOW).

    Raises:
        OSError: the folder cannot be written.
    """
    for _ in range(_ATTEMPTS):
        path = folder / temp_name(stem, suffix)
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return path
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def create_temp_dir(parent: Path, name: str, suffix: str = ".tmp") -> Path:
    """Create an empty folder ``.<name>.<8 hex><suffix>`` in ``parent`` with the umask's permissions.

    Raises:
        OSError: the parent cannot be written.
    """
    for _ in range(_ATTEMPTS):
        path = parent / temp_name(name, suffix, mark=".")
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))
