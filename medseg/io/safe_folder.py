"""Output sub-folders medseg writes into: real folders of this user, never links to elsewhere.

A case folder ``OUT/case_x`` that already exists as a symbolic link (to another study, to a
system folder) or that belongs to another user (planted in a shared folder) is refused: medseg
would otherwise write its outputs into, and delete temp files from, the link's target. The
check uses ``lstat`` (the link itself, not its target); files inside are then created with
``O_EXCL | O_NOFOLLOW`` (``medseg.io.temp_names``) and renamed with ``os.replace``, which
replaces a link rather than following it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from medseg.errors import OutputError


def check_own_folder(folder: str | Path, what: str = "output folder") -> None:
    """Raise OutputError unless ``folder`` is a real folder (not a symlink) owned by this user.

    Raises:
        OutputError: a symbolic link, not a folder, or owned by another user; names the folder.
    """
    folder = Path(folder)
    try:
        info = os.lstat(folder)
    except OSError as error:
        raise OutputError(f"{folder}: cannot inspect the {what} ({error.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{folder}: the {what} is a symbolic link; medseg never writes through links "
                          "(hint: remove the link, or choose another --out)")
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{folder}: the {what} is not a folder (hint: move the file away)")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise OutputError(f"{folder}: the {what} belongs to another user (uid {info.st_uid}) "
                          "(hint: choose an output folder of your own)")


def make_own_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` (parents as needed) unless it exists, then ``check_own_folder`` it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o777)
    except FileExistsError:
        pass
    check_own_folder(folder, what)
    return folder
