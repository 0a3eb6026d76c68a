"""Send DICOM files to a DICOM node with C-STORE (pynetdicom SCU): targets ``AE@HOST:PORT``.

One association per ``send`` call, one C-STORE per file; the call succeeds only when the peer
accepted every file (status Success or a Warning: 0xB000, 0xB007, 0xB006 mean it stored the
object, coerced or not). Anything else raises ``SendError`` with a reason that holds no tag value
(the node retries with backoff). Files are sent as stored (read with pydicom, no re-encoding of
pixel data); the association proposes each file's SOP class with its own transfer syntax and the
uncompressed ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from medseg.errors import InputError, MedsegError

_TARGET = re.compile(r"^(?P<ae>[^@\\]{1,16})@(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_WARNINGS = (0xB000, 0xB006, 0xB007)


class SendError(MedsegError):
    """The target did not accept what was sent (connection refused, association rejected, a failure
    status); the message says which, without tag values. Worth retrying later."""


@dataclass(frozen=True)
class DimseTarget:
    """A DICOM node: called AE title, host and port.

    Attributes:
        ae_title: the peer's AE title (at most 16 characters).
        host: host name or address. port: TCP port.
    """

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_dimse_target(text: str) -> DimseTarget:
    """``AE@HOST:PORT`` -> DimseTarget.

    Raises:
        InputError: the text is not of that form, or the port is outside 1..65535.
    """
    match = _TARGET.match(text.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise InputError(text, "not a DICOM node address", "write AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    return DimseTarget(match["ae"].strip(), match["host"].strip("[]"), int(match["port"]))


class CStoreSender:
    """C-STORE SCU to one target.

    Args:
        target: ``AE@HOST:PORT`` or a DimseTarget.
        calling_ae: the AE title medseg presents (the node's own).
        timeout_s: connection, association and DIMSE timeouts in seconds.

    Attributes:
        target: ``AE@HOST:PORT`` as parsed. peer: the parsed DimseTarget.
        calling_ae: may be changed after building (the storage node sets its own AE title).
    """

    def __init__(self, target: str | DimseTarget, calling_ae: str = "MEDSEG", timeout_s: float = 30.0) -> None:
        self.peer = target if isinstance(target, DimseTarget) else parse_dimse_target(target)
        self.target = str(self.peer)
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s

    def __str__(self) -> str:
        return f"C-STORE to {self.target}"

    def send(self, files: Sequence[str | Path], study_uid: str = "") -> int:
        """Send every file in one association (``study_uid`` is not needed by C-STORE).

        Returns:
            The number of objects the target accepted (all of them).

        Raises:
            SendError: a file cannot be read, the association fails, or the target refuses an object.
        """
        datasets = []
        for path in files:
            try:
                datasets.append(pydicom.dcmread(path))
            except Exception as error:  # noqa: BLE001 - a file we wrote went bad: say which, not what it holds
                raise SendError(f"{path}: cannot be read for sending ({type(error).__name__})") from None
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        for dataset in datasets:
            syntax = dataset.file_meta.TransferSyntaxUID
            syntaxes = list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
            if dataset.SOPClassUID not in [c.abstract_syntax for c in ae.requested_contexts]:
                ae.add_requested_context(dataset.SOPClassUID, syntaxes)
        assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title)
        if not assoc.is_established:
            why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not established"
            raise SendError(f"{self}: association {why} (is the node up, and does it know AE title "
                            f"{self.calling_ae}?)")
        try:
            for number, dataset in enumerate(datasets, start=1):
                status = assoc.send_c_store(dataset)
                code = int(status.Status) if status and "Status" in status else None
                if code is None:
                    raise SendError(f"{self}: no answer to object {number} of {len(datasets)} (connection lost "
                                    "or timed out)")
                if code != 0 and code not in _WARNINGS:
                    raise SendError(f"{self}: object {number} of {len(datasets)} refused with status 0x{code:04X}")
        finally:
            if assoc.is_established:
                assoc.release()
        return len(datasets)
