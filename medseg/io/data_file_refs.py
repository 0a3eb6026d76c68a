"""Data files named inside header files (.mhd ``ElementDataFile``, .nhdr ``data file``), kept inside their folder.

A detached header names where its voxels are. Taken as it is, ``ElementDataFile = /etc/passwd``
or ``data file: ../../other_patient.raw`` makes the reader load any file the user can read, and
that file would not be part of the input's hash. ``data_files(header)`` returns the named files,
resolved, after checking each one: relative, no ``..``, and inside the header's folder (after
symlinks are resolved). ``LIST`` and printf-style patterns of several files are refused: they are
rare and each name would need the same checks. Embedded data (``LOCAL``, .mha, .nrrd) names none.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from medseg.errors import InputError

# How far into a header file the data-file field is searched (headers are a few hundred bytes).
HEADER_BYTES = 1 << 16
_MHD_FIELD = re.compile(r"^\s*ElementDataFile\s*=\s*(.*?)\s*$", re.MULTILINE)
_NHDR_FIELD = re.compile(r"^\s*data ?file\s*:\s*(.*?)\s*$", re.MULTILINE | re.IGNORECASE)
_HINT = "keep the data file next to its header and name it there by its bare file name"


def _header_text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(HEADER_BYTES).decode("latin-1")
    except OSError as error:
        raise InputError(path, f"cannot read the header ({error.strerror})", "check the file") from None


def check_inside(root: Path, value: str, where: Path, what: str) -> Path:
    """``root / value`` resolved, refused unless it is a relative path without ``..`` that stays in ``root``.

    Args:
        root: the folder the value is relative to.
        value: a path read from a file's content.
        where: the file the value comes from (named in errors).
        what: what the value names, for the message.

    Raises:
        InputError: an absolute path, a ``..`` part, or a path that leaves ``root`` through a link.
    """
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if not value or posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith(("/", "\\")):
        raise InputError(where, f"{what} {value!r} is an absolute path; only names inside its folder are accepted",
                         _HINT)
    if ".." in posix.parts or ".." in windows.parts:
        raise InputError(where, f"{what} {value!r} climbs out of its folder ('..')", _HINT)
    resolved_root = root.resolve()
    target = (root / value).resolve()
    if not target.is_relative_to(resolved_root):
        raise InputError(where, f"{what} {value!r} leads outside its folder (through a link)", _HINT)
    return target


def data_files(header: str | Path) -> list[Path]:
    """The data files a .mhd/.nhdr header names (checked; see the module docstring); [] for other files.

    Raises:
        InputError: a named file outside the header's folder, or a LIST / pattern of files.
    """
    path = Path(header)
    suffix = path.suffix.lower()
    if suffix not in (".mhd", ".nhdr") or not path.is_file():
        return []
    field = _MHD_FIELD if suffix == ".mhd" else _NHDR_FIELD
    match = field.search(_header_text(path))
    if match is None:
        return []
    value = match.group(1)
    if suffix == ".mhd" and value.upper() == "LOCAL":
        return []
    if suffix == ".mhd" and (value.upper().startswith("LIST") or "%" in value):
        raise InputError(path, "the header names a list or pattern of data files; medseg reads one data file",
                         "convert the image to a single .mha or .nii.gz file")
    if suffix == ".nhdr" and (value.upper().startswith("LIST") or re.search(r"%\d*d", value)):
        raise InputError(path, "the header names a list or pattern of data files; medseg reads one data file",
                         "convert the image to a single .nrrd or .nii.gz file")
    return [check_inside(path.parent, value, path, "the data file")]
