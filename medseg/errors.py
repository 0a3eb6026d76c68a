"""Error kinds raised by medseg; each message says what, where and what to do."""

from __future__ import annotations

from pathlib import Path


class MedsegError(Exception):
    """Base class of every error medseg raises on purpose."""


class InputError(MedsegError):
    """A scan, series or label file that cannot be used as it is.

    Args:
        path: the file or folder at fault (never a patient identifier).
        reason: what is wrong, in one sentence.
        hint: what the user can do about it (optional).
    """

    def __init__(self, path: str | Path, reason: str, hint: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        message = f"{self.path}: {reason}"
        if hint:
            message += f" (hint: {hint})"
        super().__init__(message)


class ConfigError(MedsegError):
    """A configuration value or key that is missing, unknown or invalid."""


class OutputError(MedsegError):
    """A result that could not be written (read-only folder, full disk, ...)."""


class Cancelled(MedsegError):
    """A long operation (inference, a batch) stopped because the caller asked it to."""
