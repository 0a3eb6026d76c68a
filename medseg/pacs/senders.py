"""The one list of ways to send DICOM files to a PACS; ``--send-to`` targets are resolved here.

A target names its kind by its form (``SENDER_SPECS`` in order, the first whose ``matches`` accepts it):

* ``dicomweb``: ``http(s)://HOST/.../dicom-web`` (a DICOMweb root): STOW-RS (``medseg.pacs.dicomweb``).
* ``dimse``: ``AE@HOST:PORT`` (a DICOM node): C-STORE (``medseg.pacs.dimse_sender``; the calling AE
  title is ``MEDSEG`` unless the caller sets ``sender.calling_ae``, as ``medseg listen`` does).

A sender is built once per target (``build_sender(target, credentials)``) and sends the files of
one study per call (``sender.send(paths, study_uid)`` -> number of instances stored); it raises
``MedsegError`` subclasses naming the target and the reason, never credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from medseg.errors import ConfigError
from medseg.pacs.credentials import Credentials


class Sender(Protocol):
    """Sends DICOM files of one study to one target."""

    target: str

    def send(self, paths: Sequence[Path], study_uid: str) -> int:
        """Store ``paths`` (DICOM files of study ``study_uid``); the number of instances stored."""
        ...


@dataclass(frozen=True)
class SenderSpec:
    """A kind of target.

    Attributes:
        name: the kind's name (``dicomweb``, ``dimse``).
        form: how a target of this kind is written (for help and errors).
        matches: True for target text of this kind.
        builder: ``(target, credentials) -> Sender``.
    """

    name: str
    form: str
    matches: Callable[[str], bool]
    builder: Callable[[str, Credentials | None], Sender]


@dataclass
class DicomwebSender:
    """STOW-RS to a DICOMweb root (``medseg.pacs.dicomweb.store_files``)."""

    target: str
    credentials: Credentials | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        from medseg.pacs.dicomweb import check_root_url

        self.target = check_root_url(self.target)

    def send(self, paths: Sequence[Path], study_uid: str) -> int:
        from medseg.pacs.dicomweb import make_session, store_files

        with make_session(self.credentials) as session:
            return store_files(paths, self.target, study_uid, session, timeout_s=self.timeout_s)


def _is_http(target: str) -> bool:
    return target.lower().startswith(("http://", "https://"))


def _is_dimse(target: str) -> bool:
    return "@" in target and not _is_http(target)


def _dimse_sender(target: str, credentials: Credentials | None) -> Sender:
    from medseg.pacs.dimse_sender import CStoreSender  # lazy: pynetdicom only when used

    return CStoreSender(target)


_SPECS: dict[str, SenderSpec] = {spec.name: spec for spec in (
    SenderSpec("dicomweb", "http(s)://HOST[:PORT]/PATH (a DICOMweb root)", _is_http,
               lambda target, credentials: DicomwebSender(target, credentials)),
    SenderSpec("dimse", "AE@HOST:PORT (C-STORE to a DICOM node)", _is_dimse, _dimse_sender),
)}


def available_senders() -> tuple[str, ...]:
    """Registered sender kinds, in registry order."""
    return tuple(_SPECS)


def get_sender_spec(name: str) -> SenderSpec:
    """The spec registered under ``name``; ConfigError listing the choices otherwise."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown sender {name!r} (choices: {', '.join(available_senders())})") from None


def build_sender(target: str, credentials: Credentials | None = None) -> Sender:
    """The sender for ``target``, by its form.

    Raises:
        ConfigError: no registered kind accepts the target (the message lists the forms).
        PacsError: the target is of a known kind but malformed (e.g. a URL with a password in it).
    """
    for spec in _SPECS.values():
        if spec.matches(target):
            return spec.builder(target, credentials)
    forms = "; ".join(f"{spec.name}: {spec.form}" for spec in _SPECS.values())
    raise ConfigError(f"--send-to {target!r}: not a target medseg can send to ({forms})")
