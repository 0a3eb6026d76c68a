"""Atomic file writes: a result appears whole under its final name, or not at all.

The data are written to a hidden temporary file in the destination folder (same
file system, so ``os.replace`` is atomic) whose name ends with the destination's
suffix (``.name.tmp-XXXX.nii.gz``), so writers that choose the format from the
extension (nibabel, SimpleITK) still work. On success the temp file is flushed to
disk and renamed over the destination; on any error it is removed.

The temp file is created by ``medseg.io.temp_names`` (``O_EXCL | O_NOFOLLOW``, mode 0o666
under the process umask, a name within NAME_MAX): the result gets the user's usual
permissions and the umask is never changed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medseg.errors import OutputError
from medseg.io.temp_names import create_temp_file

# Compression suffixes that belong with the suffix before them (".nii.gz", ".tar.gz").
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")

_HINTS = {
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only: choose another output folder",
    errno.ENOSPC: "free some disk space or choose another output folder",
    errno.EDQUOT: "the disk quota is exhausted: free some space or choose another output folder",
    errno.EFBIG: "the file is larger than this file system or process allows",
    errno.ENOENT: "create the output folder first",
    errno.ENOTDIR: "a part of the output path is a file, not a folder: choose another path",
    errno.EISDIR: "the output path is a folder: give a file name",
    errno.EEXIST: "a file is in the way of the output folder: choose another path",
}


def full_suffix(path: str | Path) -> str:
    """The suffix that decides the format: ``".nii.gz"`` for ``a.b.nii.gz``, ``".mha"`` for ``x.mha``."""
    name = Path(path).name
    suffix = Path(name).suffix
    if suffix.lower() in _COMPRESSION_SUFFIXES:
        inner = Path(name[: -len(suffix)]).suffix
        return inner + suffix
    return suffix


def output_error(path: str | Path, error: OSError) -> OutputError:
    """An OutputError naming ``path``, the system's reason and what to do."""
    reason = error.strerror or str(error)
    hint = _HINTS.get(error.errno or 0, "check the output path and the disk")
    return OutputError(f"{path}: cannot write ({reason}) (hint: {hint})")


@contextmanager
def atomic_path(final_path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; move it into place if the block succeeds.

    Args:
        final_path: where the file must end up. Its folder must exist.

    Yields:
        A temporary file path in the same folder with the same suffix (the file
        exists and is empty; writers overwrite it).

    Raises:
        OutputError: the folder cannot be written to, the disk is full, or the
            block raised an ``OSError``; no temporary file is left behind.
            Other exceptions from the block propagate unchanged (the temp file is
            removed too).
    """
    final = Path(final_path)
    try:
        is_dir = final.is_dir()
    except OSError as error:  # e.g. a name over NAME_MAX
        raise output_error(final, error) from error
    if is_dir:
        raise output_error(final, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    suffix = full_suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    try:
        temp = create_temp_file(final.parent, stem, suffix)
    except OSError as error:
        raise output_error(final, error) from error
    done = False
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, final)
        done = True
    except OSError as error:
        raise output_error(final, error) from error
    finally:
        if not done:
            temp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a closed file's data to disk, so a crash cannot leave an empty file after the rename."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path. Raises OutputError."""
    final = Path(path)
    with atomic_path(final) as temp:
        temp.write_bytes(data)
    return final


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path. Raises OutputError."""
    final = Path(path)
    with atomic_path(final) as temp:
        temp.write_text(text, encoding=encoding)
    return final
