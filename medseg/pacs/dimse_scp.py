"""The storage node's C-STORE SCP (pynetdicom): an acknowledged object is on disk and in the queue.

For each C-STORE request the handler

1. skips objects whose SOP class is not an image storage class (SEG, RTSTRUCT, SR, presentation
   states...) with success status and a log line naming the SOP class and the hashed series id;
2. refuses with ``0xA700`` (Refused: Out of Resources) an object that would take the node's folder
   over its disk budget (the sender retries later), and with ``0xC000`` one without readable UIDs;
3. writes the object as received (``event.encoded_dataset()``, no re-encoding) atomically and
   fsynced into ``OUT/incoming/<series key>/<hashed SOPInstanceUID>.dcm``;
4. records the instance in the queue (a committed SQLite transaction),

and only then returns success: an acknowledged object survives a kill at any later moment. A
kill between 3 and 4 leaves a file without a queue row; the node adopts such folders when it
starts (``medseg.pacs.node.StorageNode``), and the sender, which got no acknowledgement, sends
the object again anyway.

Associations: only uncompressed transfer syntaxes are offered (Explicit and Implicit VR Little
Endian), so a PACS decompresses before sending rather than medseg needing codecs; the calling AE
title must be one of ``allow_ae`` when that list is given (pynetdicom rejects the association
otherwise); the called AE title must be the node's own. The server binds to ``host`` (127.0.0.1
unless told otherwise).

Privacy: log lines name objects by SOP class name and hashed series key only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt

from medseg.errors import OutputError
from medseg.io.atomic import atomic_write_bytes
from medseg.pacs.node_disk import DiskBudget, instance_name, series_key
from medseg.pacs.queue import SeriesQueue

LOGGER = logging.getLogger(__name__)
INCOMING = "incoming"
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


def is_image_storage(sop_class_uid: str) -> bool:
    """True for image storage SOP classes (CT, MR, Enhanced ..., Secondary Capture ... Image Storage)."""
    return UID(sop_class_uid).name.endswith("Image Storage")


def sop_class_name(sop_class_uid: str) -> str:
    """The SOP class's name (or ``"unknown SOP class"``; a private UID is not worth logging)."""
    name = UID(sop_class_uid).name
    return name if name != sop_class_uid else "unknown SOP class"


@dataclass(frozen=True)
class ScpSettings:
    """How the SCP listens.

    Attributes:
        ae_title: the node's AE title (the called AE title it answers to).
        host: the address to bind (``"127.0.0.1"`` by default in ``medseg listen``).
        port: the TCP port (0: any free port; ``StorageSCP.port`` tells which).
        allow_ae: calling AE titles accepted; empty: any.
    """

    ae_title: str
    host: str
    port: int
    allow_ae: tuple[str, ...] = ()


class StorageSCP:
    """The C-STORE server writing into ``folder/incoming`` and recording into ``queue``.

    Args:
        settings: AE title, address and the calling-AE whitelist.
        folder: the node's folder.
        queue: the node's queue.
        budget: the node's disk budget.
        store_lock: held while an object is written and recorded; the node holds it while it deletes
            a sent series' folder, so a late object of that series is never deleted with it.
    """

    def __init__(self, settings: ScpSettings, folder: Path, queue: SeriesQueue, budget: DiskBudget,
                 store_lock: threading.Lock) -> None:
        self.settings = settings
        self.incoming = Path(folder) / INCOMING
        self.queue = queue
        self.budget = budget
        self.store_lock = store_lock
        self._server: Any = None

    def start(self) -> StorageSCP:
        """Start listening (pynetdicom's threaded server).

        Raises:
            OutputError: the address cannot be bound (in use, not local, no permission).
        """
        ae = AE(ae_title=self.settings.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
        ae.require_calling_aet = list(self.settings.allow_ae)
        ae.require_called_aet = True
        ae.maximum_associations = 8
        try:
            self._server = ae.start_server((self.settings.host, self.settings.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self.handle_store)])
        except OSError as error:
            raise OutputError(f"{self.settings.host}:{self.settings.port}: cannot listen ({error.strerror or error}) "
                              "(hint: choose a free --port, or a --host address of this machine)") from error
        return self

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop listening (running associations are ended)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    def handle_store(self, event: Any) -> int:
        """The EVT_C_STORE handler: see the module docstring. Returns the DIMSE status."""
        request = event.request
        sop_class = str(request.AffectedSOPClassUID or "")
        sop_instance = str(request.AffectedSOPInstanceUID or "")
        try:
            dataset = event.dataset
            series_uid = str(dataset.SeriesInstanceUID)
            study_uid = str(dataset.get("StudyInstanceUID", ""))
        except Exception:  # noqa: BLE001 - any decoding failure: refuse this object, keep the association
            LOGGER.warning("refused a %s object: its header cannot be read or has no SeriesInstanceUID",
                           sop_class_name(sop_class))
            return CANNOT_UNDERSTAND
        key = series_key(series_uid)
        if not is_image_storage(sop_class):
            LOGGER.info("skipped a %s object of series %s: not an image", sop_class_name(sop_class), key)
            return SUCCESS
        if not sop_instance:
            LOGGER.warning("refused an object of series %s: no SOPInstanceUID", key)
            return CANNOT_UNDERSTAND
        data = event.encoded_dataset(include_meta=True)
        if not self.budget.fits(len(data)):
            LOGGER.warning("refused an object of series %s: the disk budget (%d bytes) is used up (%d bytes)",
                           key, self.budget.max_bytes or 0, self.budget.used)
            return OUT_OF_RESOURCES
        path = self.incoming / key / instance_name(sop_instance)
        try:
            with self.store_lock:
                new = not path.exists()
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, data)
                if new or self.queue.get(key) is None:
                    before = self.queue.record_instance(key, series_uid, study_uid)
                    if before in ("", "sent", "failed"):
                        LOGGER.info("receiving series %s", key)
        except (OSError, OutputError) as error:
            LOGGER.error("could not store an object of series %s (%s)", key, type(error).__name__)
            return OUT_OF_RESOURCES
        if new:
            self.budget.add(len(data))
        return SUCCESS

