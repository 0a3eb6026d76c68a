"""Text that travels (reports, logs, review logs) without DICOM folder or file names.

PACS exports name folders (and sometimes files) after the patient, so for a DICOM source
``redact_names`` replaces, in a message, every full path of its files and folders and then each
file and folder name below the batch input as a whole token, with ``<file>`` / ``<folder>``.
``library_error`` reduces an exception from pydicom or highdicom, whose text can quote tag values,
to its type and the tag it names (``ValueError at (0020,0013) InstanceNumber``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_TAG = re.compile(r"\(\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)")
_KEYWORD = re.compile(r"\b([A-Z][A-Za-z0-9]{2,63})\b")


def _token(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.\-^])" + re.escape(name) + r"(?![\w\-^])")


def redact_names(text: str, files: Iterable[str | Path], root: str | Path | None = None) -> str:
    """``text`` with the paths, file names and folder names (below ``root``) of ``files`` replaced."""
    files = [Path(f) for f in files]
    whole: set[str] = set()
    names: dict[str, str] = {}
    for path in files:
        for candidate in (path, *path.parents):
            if str(candidate) not in ("", ".", "/"):
                whole.add(str(candidate))
                whole.add(str(candidate.resolve()) if candidate.is_absolute() else str(candidate))
        names[path.name] = "<file>"
        below = path.parent
        if root is not None:
            try:
                below = path.parent.relative_to(Path(root))
            except ValueError:
                below = path.parent
        for part in below.parts:
            if part not in ("/", "", ".", ".."):
                names.setdefault(part, "<folder>")
    if root is not None and Path(root).name:
        whole.add(str(Path(root)))
    for value in sorted(whole, key=len, reverse=True):
        text = text.replace(value, "<path>")
    for name, placeholder in sorted(names.items(), key=lambda item: len(item[0]), reverse=True):
        text = _token(name).sub(placeholder, text)
    return text


def library_error(error: BaseException) -> str:
    """``TypeName`` plus the DICOM tag the message names, never the message's values."""
    from pydicom.datadict import keyword_for_tag

    message = str(error)
    match = _TAG.search(message)
    if match:
        tag = int(match.group(1) + match.group(2), 16)
        keyword = keyword_for_tag(tag)
        return f"{type(error).__name__} at ({match.group(1)},{match.group(2)})" + (f" {keyword}" if keyword else "")
    from pydicom.datadict import dictionary_has_tag, tag_for_keyword

    for word in _KEYWORD.findall(message):
        tag = tag_for_keyword(word)
        if tag is not None and dictionary_has_tag(tag):
            return f"{type(error).__name__} at {word}"
    return type(error).__name__
