"""Helpers for the storage-node tests: real DICOM networking on loopback, no mocks.

* ``push``: pynetdicom's own SCU sends files to the node (one association, one C-STORE per file).
* ``CollectingSCP``: a second pynetdicom storage SCP standing in for the PACS the SEGs go back to;
  it keeps what it received (SOP class, SOPInstanceUID, the file bytes) and can refuse everything
  (status 0xA700) to play a PACS that is down.
* ``phi_series``: a small MR series of a sphere with patient markers in its headers (the tiny
  model finds the sphere), written slice by slice by medseg's DICOM writer.
"""

from __future__ import annotations

import gzip
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from batch_helpers import PHI_MARKERS, sphere_image, tiny_model_folder  # noqa: E402

from medseg.io.dicom_export import write_dicom_series  # noqa: E402
from medseg.types import SourceInfo, Volume  # noqa: E402

__all__ = ["PHI_MARKERS", "tiny_model_folder", "CollectingSCP", "push", "phi_series", "wait_for", "free_port",
           "phi_in_files"]
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def phi_series(folder: Path, seed: int = 7, size: int = 20, study_uid: str | None = None) -> list[Path]:
    """A size^3 MR series (1.5 x 1.5 x 2 mm) of a bright sphere whose headers hold ``PHI_MARKERS``."""
    affine = np.array([[-1.5, 0, 0, 10.0], [0, -1.5, 0, 20.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]])
    volume = Volume(array=np.round(sphere_image(seed, size))[np.newaxis], affine=affine, channel_names=("MR",),
                    source=SourceInfo(path="", format="memory"))
    files = write_dicom_series(volume, folder, series_description="sphere", study_uid=study_uid,
                               patient_id=PHI_MARKERS["PatientID"], patient_name=PHI_MARKERS["PatientName"])
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.AccessionNumber = PHI_MARKERS["AccessionNumber"]
        dataset.save_as(path)
    return files


def push(files: Sequence[Path], port: int, *, called: str = "MEDSEG", calling: str = "PACS") -> list[int] | None:
    """C-STORE ``files`` to 127.0.0.1:port; the status of each, or None when the association failed."""
    datasets = [pydicom.dcmread(path) for path in files]
    ae = AE(ae_title=calling)
    # Generous timeouts: the test machine's cores may be shared with training runs.
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 300
    for sop_class in dict.fromkeys(str(d.SOPClassUID) for d in datasets):
        ae.add_requested_context(sop_class, SYNTAXES)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return None
    try:
        return [int(assoc.send_c_store(dataset).Status) for dataset in datasets]
    finally:
        assoc.release()


class CollectingSCP:
    """A storage SCP on 127.0.0.1 keeping every object it is sent.

    Attributes:
        port: its port. ae_title: its AE title ("PACS").
        received: ``[{"sop_class", "sop_instance", "study_uid", "series_uid", "data"}]`` in arrival order.
        refuse: when True, every object is refused with 0xA700 (and not kept).
    """

    def __init__(self, port: int | None = None, ae_title: str = "PACS") -> None:
        self.port = port or free_port()
        self.ae_title = ae_title
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.refuse = False
        self._lock = threading.Lock()
        self._server: Any = None

    @property
    def target(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def _on_store(self, event: Any) -> int:
        if self.refuse:
            with self._lock:
                self.refused += 1
            return 0xA700
        dataset = event.dataset
        with self._lock:
            self.received.append({"sop_class": str(event.request.AffectedSOPClassUID),
                                  "sop_instance": str(event.request.AffectedSOPInstanceUID),
                                  "study_uid": str(dataset.StudyInstanceUID),
                                  "series_uid": str(dataset.SeriesInstanceUID),
                                  "data": event.encoded_dataset()})
        return 0x0000

    def start(self) -> CollectingSCP:
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, SYNTAXES)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def __enter__(self) -> CollectingSCP:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "the condition",
             poll_s: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(poll_s)


def phi_in_files(root: Path) -> list[str]:
    """Files under ``root`` other than ``.dcm`` objects whose bytes or names hold a PHI marker."""
    found = []
    markers = [value.encode() for value in PHI_MARKERS.values()] + [b"Quokka", b"Zyxwv", b"8675309"]
    for path in root.rglob("*"):
        if any(marker.decode() in str(path.relative_to(root)) for marker in markers):
            found.append(str(path))
        if path.is_file() and path.suffix != ".dcm":
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            if any(marker in data for marker in markers):
                found.append(str(path))
    return found
