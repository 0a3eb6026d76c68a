"""The DICOM storage node behind ``medseg listen``: receive, wait for quiet, segment, send back.

Mechanism (one process, two kinds of threads):

* pynetdicom's server threads run the C-STORE SCP (``medseg.pacs.dimse_scp``): every acknowledged
  object is already on disk under ``OUT/incoming/<series key>/`` and recorded in the SQLite queue
  (``medseg.pacs.queue``, ``OUT/queue.sqlite3``).
* one worker thread loops over ``step``: series quiet for ``quiet_seconds`` become ``complete``;
  the oldest complete series is segmented (``medseg.pacs.node_worker``: the batch machinery of
  ``medseg predict``, outputs in ``OUT/<case_id>/``); a segmented series whose send is due is sent
  (``medseg.pacs.senders``: STOW-RS or C-STORE) and marked ``sent`` only after the target accepted
  it; a refusal is retried with exponential backoff (``backoff_s * 2**(n-1)``, at most
  ``max_backoff_s``) and after ``max_attempts`` the series is ``failed`` in the report. Segmenting
  one series never waits for a PACS that is down. After each outcome ``OUT/report.json`` is
  rebuilt from the queue (``medseg.pacs.node_report``).

Never losing a study (kill at any moment, then restart with the same OUT): ``start`` adopts
incoming folders that have objects but no queue row (a kill between writing and recording),
puts ``segmenting`` series back to ``complete`` (their work is redone; what the batch already
finished on disk is skipped) and sends ``segmented`` series that have no ``sent`` mark. Resending
is harmless: the SEG of a series keeps the same derived SOPInstanceUID (``node_worker``), so a
target that got it before the kill just sees the same instance again. A series is sent once
unless the process dies between the target's acceptance and the commit of the mark.

Disk: ``max_disk_bytes`` bounds the folder (the SCP refuses objects beyond it with 0xA700) and a
sent series' received objects are deleted. A failed series keeps them under
``OUT/incoming/<key>/`` for the operator (the report names the key); delete them when done.

One node per folder: ``OUT`` is locked (``medseg.io.folder_lock``) while the node runs.
Privacy: logs name series by their hashed key, never by a tag value.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from medseg.errors import MedsegError
from medseg.inference import completion
from medseg.inference.batch_case import CaseSettings
from medseg.io.folder_lock import FolderLock
from medseg.pacs.dimse_scp import INCOMING, ScpSettings, StorageSCP
from medseg.pacs.node_disk import GIB, DiskBudget
from medseg.pacs.node_report import build_node_report, write_node_report
from medseg.pacs.node_worker import segment_series
from medseg.pacs.queue import SeriesQueue, SeriesRow

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSettings:
    """What ``medseg listen`` was told.

    Attributes:
        out_dir: the node's folder (queue, received objects, outputs, report).
        model_dir: the model folder.
        send_to: where SEGs go: a DICOMweb root URL or ``AE@HOST:PORT``.
        ae_title: the node's AE title (called AE title of its SCP, calling AE title of its C-STOREs).
        host: the address the SCP binds (default loopback).
        port: the SCP's TCP port (0: any free one).
        allow_ae: calling AE titles accepted (empty: any).
        quiet_seconds: a series is complete after this long without a new object.
        max_disk_gb: the folder's disk budget in GiB (None: unbounded).
        max_attempts: send attempts before a series is failed.
        backoff_s, max_backoff_s: the first retry delay and the longest one.
        device: inference device.
        poll_s: how often the worker looks for work when idle.
        credentials: a credentials file for the DICOMweb target (``medseg.pacs.credentials``), or None.
    """

    out_dir: Path
    model_dir: Path
    send_to: str
    ae_title: str = "MEDSEG"
    host: str = "127.0.0.1"
    port: int = 11112
    allow_ae: tuple[str, ...] = ()
    quiet_seconds: float = 10.0
    max_disk_gb: float | None = None
    max_attempts: int = 8
    backoff_s: float = 5.0
    max_backoff_s: float = 600.0
    device: str = "cpu"
    poll_s: float = 0.2
    credentials: Path | None = None


def make_sender(settings: NodeSettings) -> Any:
    """The sender for ``settings.send_to`` (``medseg.pacs.senders``); a C-STORE sender calls as the node's AE."""
    from medseg.pacs.credentials import read_credentials
    from medseg.pacs.senders import build_sender

    credentials = read_credentials(settings.credentials) if settings.credentials is not None else None
    sender = build_sender(settings.send_to, credentials)
    if hasattr(sender, "calling_ae"):
        sender.calling_ae = settings.ae_title
    return sender


class StorageNode:
    """A running node: ``start()``, then ``stop()`` (or use it as a context manager).

    Args:
        settings: see NodeSettings.
        sender: an object with ``send(paths, study_uid) -> int`` (default: built from ``send_to``).
        predictor: a loaded Predictor of ``settings.model_dir`` (default: loaded by ``start``).
        worker: run the worker thread (tests drive ``step`` themselves with False).
    """

    def __init__(self, settings: NodeSettings, *, sender: Any = None, predictor: Any = None,
                 worker: bool = True) -> None:
        self.settings = settings
        self.folder = Path(settings.out_dir)
        self.sender = sender
        self.predictor = predictor
        self.run_worker = worker
        self.store_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock: FolderLock | None = None
        self.queue: SeriesQueue | None = None
        self.scp: StorageSCP | None = None
        self._started = time.monotonic()
        self._case_settings: CaseSettings | None = None
        self.budget: DiskBudget | None = None

    # --- lifetime ------------------------------------------------------------------------

    def start(self) -> StorageNode:
        """Lock the folder, recover the queue, load the model, start listening and working."""
        from medseg.inference.predictor import Predictor  # lazy: torch and MONAI are heavy

        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.folder, "node folder").acquire()
        try:
            self.queue = SeriesQueue(self.folder)
            adopted = self._adopt_orphans()
            self._remove_sent_objects()
            redone = self.queue.recover()
            if adopted or redone:
                LOGGER.info("restart: %d series adopted, %d series to segment again", len(adopted), len(redone))
            if self.sender is None:
                self.sender = make_sender(self.settings)
            if self.predictor is None:
                self.predictor = Predictor.from_model(self.settings.model_dir, device=self.settings.device)
            self._case_settings = CaseSettings(out_dir=self.folder,
                                               model_sha256=completion.folder_sha256(self.settings.model_dir))
            max_bytes = None if self.settings.max_disk_gb is None else int(self.settings.max_disk_gb * GIB)
            self.budget = DiskBudget(self.folder, max_bytes)
            scp_settings = ScpSettings(self.settings.ae_title, self.settings.host, self.settings.port,
                                       tuple(self.settings.allow_ae))
            self.scp = StorageSCP(scp_settings, self.folder, self.queue, self.budget, self.store_lock).start()
        except BaseException:
            self.stop()
            raise
        self._started = time.monotonic()
        LOGGER.info("listening as %s on %s:%d; sending to %s", self.settings.ae_title, self.settings.host,
                    self.scp.port, getattr(self.sender, "target", "the sender"))
        if self.run_worker:
            self._thread = threading.Thread(target=self._work, name="medseg-node-worker", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, let the worker finish its current step, close the queue, unlock the folder."""
        self._stop.set()
        if self.scp is not None:
            self.scp.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.queue is not None:
            self.queue.close()
            self.queue = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> StorageNode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler); ``stop`` does the stopping."""
        self._stop.set()

    def wait(self) -> None:
        """Block until ``stop`` is called (from a signal handler or another thread)."""
        while not self._stop.wait(1.0):
            pass

    @property
    def port(self) -> int:
        """The port the SCP listens on."""
        assert self.scp is not None, "start the node first"
        return self.scp.port

    # --- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception:  # noqa: BLE001 - the node must keep running; the traceback goes to the debug log
                LOGGER.error("the worker's step failed; retrying", exc_info=LOGGER.isEnabledFor(logging.DEBUG))
                busy = False
            if not busy:
                self._stop.wait(self.settings.poll_s)

    def step(self, now: float | None = None) -> bool:
        """One round: mark quiet series complete, segment one, send one that is due. True if anything was done."""
        assert self.queue is not None, "start the node first"
        for key in self.queue.mark_complete(self.settings.quiet_seconds, now):
            LOGGER.info("series %s complete (quiet for %g s)", key, self.settings.quiet_seconds)
        busy = False
        row = self.queue.claim_complete(now)
        if row is not None:
            self._segment(row)
            busy = True
        due = self.queue.due_for_sending(now)
        if due is not None:
            self._send(due)
            busy = True
        return busy

    def _segment(self, row: SeriesRow) -> None:
        assert self.queue is not None and self._case_settings is not None
        started = time.perf_counter()
        outcome = segment_series(row, self.folder, self.predictor, self._case_settings)
        if not self.queue.finish_segmentation(row.key, row.generation, entry=outcome.entry, case_id=outcome.case_id,
                                              seg_file=outcome.seg_file, reason=outcome.reason):
            LOGGER.info("series %s received more objects while segmenting; it will be done again", row.key)
            return
        if outcome.reason is None:
            LOGGER.info("series %s segmented in %.1f s (%s)", row.key, time.perf_counter() - started, outcome.case_id)
        else:
            LOGGER.warning("series %s failed: %s", row.key, outcome.reason)
        self.budget.recount()
        self.write_report()

    def _send(self, row: SeriesRow) -> None:
        assert self.queue is not None and row.seg_file is not None
        try:
            self.sender.send([self.folder / row.seg_file], row.study_uid)
        except (MedsegError, OSError) as error:
            state = self.queue.mark_send_failed(
                row.key, row.generation, _send_reason(error), max_attempts=self.settings.max_attempts,
                backoff_s=self.settings.backoff_s, max_backoff_s=self.settings.max_backoff_s)
            after = self.queue.get(row.key)
            if state == "failed":
                LOGGER.error("series %s: sending failed %d times; given up (%s)", row.key, after.attempts if after
                             else 0, _send_reason(error))
            elif after is not None:
                LOGGER.warning("series %s: sending failed (attempt %d of %d, next in %.0f s): %s", row.key,
                               after.attempts, self.settings.max_attempts, after.next_try - time.time(),
                               _send_reason(error))
            self.write_report()
            return
        if self.queue.mark_sent(row.key, row.generation):
            with self.store_lock:
                current = self.queue.get(row.key)
                if current is not None and current.state == "sent":
                    shutil.rmtree(self.folder / INCOMING / row.key, ignore_errors=True)
            sent = self.queue.get(row.key)
            if sent is not None and sent.sent_at is not None:
                LOGGER.info("series %s sent: %.1f s from its first object to the SEG accepted", row.key,
                            sent.sent_at - sent.first_received)
            self.budget.recount()
        self.write_report()

    def write_report(self) -> Path:
        """Rebuild ``OUT/report.json`` from the queue."""
        assert self.queue is not None
        options = {"node": True, "quiet_seconds": self.settings.quiet_seconds, "max_attempts": self.settings.max_attempts,
                   "device": self.settings.device, "send_to_kind": type(self.sender).__name__}
        report = build_node_report(self.queue.rows(), model_dir=self.settings.model_dir,
                                   model_sha256=self._case_settings.model_sha256 if self._case_settings else "",
                                   options=options, class_names=tuple(getattr(self.predictor, "class_names", ())),
                                   wall_seconds=time.monotonic() - self._started)
        return write_node_report(self.folder, report)

    # --- restart -------------------------------------------------------------------------

    def _remove_sent_objects(self) -> None:
        """Received objects of sent series still on disk (killed between the mark and the deletion): deleted."""
        assert self.queue is not None
        for row in self.queue.rows():
            if row.state == "sent" and (self.folder / INCOMING / row.key).exists():
                shutil.rmtree(self.folder / INCOMING / row.key, ignore_errors=True)

    def _adopt_orphans(self) -> list[str]:
        """Incoming folders with objects but no queue row (killed between writing and recording): queued again."""
        assert self.queue is not None
        incoming = self.folder / INCOMING
        if not incoming.is_dir():
            return []
        known = self.queue.keys()
        adopted = []
        for folder in sorted(p for p in incoming.iterdir() if p.is_dir() and p.name not in known):
            files = sorted(folder.glob("*.dcm"))
            if not files:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                header = pydicom.dcmread(files[0], stop_before_pixels=True,
                                         specific_tags=["SeriesInstanceUID", "StudyInstanceUID"])
                self.queue.record_instance(folder.name, str(header.SeriesInstanceUID),
                                           str(header.get("StudyInstanceUID", "")))
            except Exception:  # noqa: BLE001 - an unreadable leftover is logged and left for the operator
                LOGGER.warning("incoming folder %s holds an unreadable object; left alone", folder.name)
                continue
            adopted.append(folder.name)
        return adopted


def _send_reason(error: BaseException) -> str:
    """A send error's text (medseg's senders name the target and the reason, never tag values)."""
    text = str(error) if isinstance(error, MedsegError) else f"{type(error).__name__}: {error.strerror or ''}"
    return text[:500]
