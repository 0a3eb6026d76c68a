"""An exclusive lock per output or run folder, so two medseg processes never write one folder.

``FolderLock(folder, what)`` opens ``folder/.medseg.lock`` (``O_NOFOLLOW``: a planted symlink is
refused) and takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on it. The holder writes its pid into the
file; a second process fails at once with an ``OutputError`` naming that pid. The kernel drops the
lock when the holder exits, even after SIGKILL, so a stale lock file never blocks a later run.
On release the holder deletes the file while still holding the lock; a process that locked the
file just before it was deleted notices (the path no longer names the inode it locked) and
tries again on the new file, so two holders can never coexist. Each ``FolderLock`` is its own
open file description, so a second lock in the same process is refused as well.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from medseg.errors import OutputError

LOCK_NAME = ".medseg.lock"
_ATTEMPTS = 20


def lock_holder(folder: str | Path) -> int | None:
    """The pid written in ``folder``'s lock file, or None when there is none or it is unreadable."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class FolderLock:
    """Hold ``folder``'s lock for the life of a ``with`` block (or until ``release``).

    Args:
        folder: an existing folder.
        what: what the folder is, for the message (``"output folder"``, ``"run folder"``).

    Raises:
        OutputError: another process holds the lock (its pid is named), or the lock file cannot be made.
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._handle: int | None = None

    def acquire(self) -> FolderLock:
        for _ in range(_ATTEMPTS):
            handle = self._try_lock(self.folder / LOCK_NAME)
            if handle is not None:
                os.ftruncate(handle, 0)
                os.write(handle, f"{os.getpid()}\n".encode("ascii"))
                self._handle = handle
                return self
        raise OutputError(f"{self.folder}: the lock of the {self.what} keeps being replaced; try again")

    def _try_lock(self, path: Path) -> int | None:
        """The locked handle of ``path``, or None when the file was replaced meanwhile (retry)."""
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as error:
            reason = "the lock file is a symbolic link" if error.errno == errno.ELOOP else error.strerror
            raise OutputError(f"{path}: cannot create the lock of the {self.what} ({reason})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            holder = lock_holder(self.folder)
            who = f"pid {holder}" if holder is not None else "another process"
            raise OutputError(
                f"{self.folder}: the {self.what} is in use by another medseg process ({who}) "
                f"(hint: wait for it to finish, or choose another folder)"
            ) from None
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        locked = os.fstat(handle)
        if current is None or (current.st_dev, current.st_ino) != (locked.st_dev, locked.st_ino):
            os.close(handle)  # released and deleted by its holder after we opened it
            return None
        return handle

    def release(self) -> None:
        """Delete the lock file, then drop the lock (closing the file releases it)."""
        if self._handle is not None:
            path = self.folder / LOCK_NAME
            try:
                current = os.stat(path, follow_symlinks=False)
                locked = os.fstat(self._handle)
                if (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
                    path.unlink()
            except OSError:
                pass  # the folder went away or is read-only now: the kernel still drops the lock
            os.close(self._handle)
            self._handle = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
