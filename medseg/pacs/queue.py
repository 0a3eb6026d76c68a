"""The storage node's on-disk queue: one SQLite row per received series, one state machine.

States of a series (``medseg listen``)::

    received --(quiet period)--> complete --(worker claims)--> segmenting --> segmented --(sender)--> sent
                                                                   |              |
                                                                   v              v (attempts exhausted)
                                                                 failed         failed

* ``received``: instances are arriving; ``last_received`` moves with each new one.
* ``complete``: nothing new arrived for the quiet period; waiting for the worker.
* ``segmenting``: the worker is on it. After a crash such rows are put back to ``complete``
  (``recover``): the work is redone (the batch machinery skips what is already complete on disk).
* ``segmented``: the outputs and the SEG to send are on disk; sending is due at ``next_try``.
* ``sent``: the target accepted the SEG; committed only *after* the sender returned.
* ``failed``: the series cannot be segmented (the reason goes to the report), or the target
  refused it ``max_attempts`` times.

A new instance of a series in any state puts it back to ``received`` and bumps its
``generation``; a worker that claimed an older generation cannot record its result over the new
one (every transition out of ``segmenting``/``segmented`` names the generation it claimed).

Durability: the database runs in WAL mode with ``synchronous=FULL``; every change is one
``BEGIN IMMEDIATE`` transaction, so a process killed at any moment leaves each row in one of the
states above. One connection is shared by the node's threads behind a lock.

Privacy: rows hold the DICOM UIDs (as ``report.json`` does) and a hashed series key, nothing
from the patient or study modules.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import OutputError

QUEUE_NAME = "queue.sqlite3"
STATES = ("received", "complete", "segmenting", "segmented", "sent", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    key TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    state TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    instances INTEGER NOT NULL DEFAULT 0,
    first_received REAL NOT NULL,
    last_received REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    case_id TEXT,
    entry TEXT,
    seg_file TEXT,
    reason TEXT,
    segmented_at REAL,
    sent_at REAL,
    updated REAL NOT NULL
)
"""


@dataclass(frozen=True)
class SeriesRow:
    """One series of the queue (see the module docstring for the states).

    Attributes:
        key: hashed series id (names its folders; never a tag value).
        series_uid, study_uid: the DICOM UIDs.
        state: one of ``STATES``.
        generation: bumped by each new instance.
        instances: instances stored so far (duplicates not counted).
        first_received, last_received: Unix times.
        attempts: failed send attempts so far.
        next_try: when the next send attempt is due (Unix time).
        case_id: the batch case id of its outputs (once segmented).
        entry: the batch case entry (``medseg.inference.batch_case.run_case``), once segmented or failed.
        seg_file: the SEG to send, relative to the node's folder.
        reason: why it failed, or the last send error.
        segmented_at, sent_at: Unix times.
        updated: when the row last changed (Unix time).
    """

    key: str
    series_uid: str
    study_uid: str
    state: str
    generation: int
    instances: int
    first_received: float
    last_received: float
    attempts: int
    next_try: float
    case_id: str | None
    entry: dict[str, Any] | None
    seg_file: str | None
    reason: str | None
    segmented_at: float | None
    sent_at: float | None
    updated: float


class SeriesQueue:
    """The queue in ``folder/queue.sqlite3`` (created).

    Args:
        folder: the node's output folder.

    Raises:
        OutputError: the database cannot be opened or is not a queue.
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / QUEUE_NAME
        try:
            self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._connection.row_factory = sqlite3.Row
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute(_SCHEMA)
        except sqlite3.Error as error:
            raise OutputError(f"{self.path}: cannot open the node's queue ({error}) (hint: the file is damaged "
                              "or not a medseg queue; move it away to start an empty queue)") from error
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    # --- arrivals ------------------------------------------------------------------------

    def record_instance(self, key: str, series_uid: str, study_uid: str, now: float | None = None) -> str:
        """A new instance of series ``key`` is on disk: the series is (again) ``received``.

        Returns:
            The series' state before (``""`` for a new series).
        """
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute("SELECT state FROM series WHERE key = ?", (key,)).fetchone()
            if row is None:
                db.execute("INSERT INTO series (key, series_uid, study_uid, state, generation, instances, "
                           "first_received, last_received, updated) VALUES (?, ?, ?, 'received', 1, 1, ?, ?, ?)",
                           (key, series_uid, study_uid, now, now, now))
                return ""
            restart = row["state"] in ("sent", "failed")
            db.execute("UPDATE series SET state = 'received', generation = generation + 1, "
                       "instances = instances + 1, last_received = ?, attempts = 0, next_try = 0, reason = NULL, "
                       "first_received = CASE WHEN ? THEN ? ELSE first_received END, updated = ? WHERE key = ?",
                       (now, restart, now, now, key))
            return str(row["state"])

    # --- the worker's transitions ------------------------------------------------------

    def mark_complete(self, quiet_seconds: float, now: float | None = None) -> list[str]:
        """Series with no new instance for ``quiet_seconds`` become ``complete``; their keys."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            keys = [r["key"] for r in db.execute("SELECT key FROM series WHERE state = 'received' AND "
                                                 "last_received <= ? ORDER BY last_received", (now - quiet_seconds,))]
            db.executemany("UPDATE series SET state = 'complete', updated = ? WHERE key = ?",
                           [(now, key) for key in keys])
        return keys

    def claim_complete(self, now: float | None = None) -> SeriesRow | None:
        """The oldest ``complete`` series, now ``segmenting``; None when there is none."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute("SELECT * FROM series WHERE state = 'complete' ORDER BY last_received LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE series SET state = 'segmenting', updated = ? WHERE key = ?", (now, row["key"]))
        return _row({**dict(row), "state": "segmenting"})

    def finish_segmentation(self, key: str, generation: int, *, entry: dict[str, Any], case_id: str | None,
                            seg_file: str | None, reason: str | None = None, now: float | None = None) -> bool:
        """Record the worker's result: ``segmented`` (with ``seg_file``) or ``failed`` (with ``reason``).

        Returns:
            False when the series changed meanwhile (a newer generation): nothing is recorded.
        """
        now = time.time() if now is None else now
        state = "failed" if reason is not None else "segmented"
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE series SET state = ?, entry = ?, case_id = ?, seg_file = ?, reason = ?, segmented_at = ?, "
                "attempts = 0, next_try = ?, updated = ? WHERE key = ? AND generation = ? AND state = 'segmenting'",
                (state, json.dumps(entry), case_id, seg_file, reason, now, now, now, key, generation)).rowcount
        return changed == 1

    def due_for_sending(self, now: float | None = None) -> SeriesRow | None:
        """The ``segmented`` series whose next send attempt is due soonest (and is due now), or None."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._connection.execute("SELECT * FROM series WHERE state = 'segmented' AND next_try <= ? "
                                           "ORDER BY next_try LIMIT 1", (now,)).fetchone()
        return None if row is None else _row(dict(row))

    def mark_sent(self, key: str, generation: int, now: float | None = None) -> bool:
        """The target accepted the SEG (call only after the sender returned). False: the series changed."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            changed = db.execute("UPDATE series SET state = 'sent', sent_at = ?, reason = NULL, updated = ? "
                                 "WHERE key = ? AND generation = ? AND state = 'segmented'",
                                 (now, now, key, generation)).rowcount
        return changed == 1

    def mark_send_failed(self, key: str, generation: int, reason: str, *, max_attempts: int, backoff_s: float,
                         max_backoff_s: float, now: float | None = None) -> str:
        """One more failed attempt: retry after ``backoff_s * 2**(attempts-1)`` (at most ``max_backoff_s``),
        or ``failed`` after ``max_attempts``. Returns the new state (``""`` when the series changed)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute("SELECT attempts FROM series WHERE key = ? AND generation = ? AND state = 'segmented'",
                             (key, generation)).fetchone()
            if row is None:
                return ""
            attempts = int(row["attempts"]) + 1
            state = "failed" if attempts >= max_attempts else "segmented"
            delay = min(max_backoff_s, backoff_s * 2 ** (attempts - 1))
            db.execute("UPDATE series SET state = ?, attempts = ?, next_try = ?, reason = ?, updated = ? "
                       "WHERE key = ?", (state, attempts, now + delay, reason, now, key))
        return state

    def recover(self, now: float | None = None) -> list[str]:
        """After a restart: ``segmenting`` series (their worker died) go back to ``complete``; their keys."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            keys = [r["key"] for r in db.execute("SELECT key FROM series WHERE state = 'segmenting'")]
            db.execute("UPDATE series SET state = 'complete', updated = ? WHERE state = 'segmenting'", (now,))
        return keys

    # --- reading -------------------------------------------------------------------------

    def get(self, key: str) -> SeriesRow | None:
        """The row of ``key``, or None."""
        with self._lock:
            row = self._connection.execute("SELECT * FROM series WHERE key = ?", (key,)).fetchone()
        return None if row is None else _row(dict(row))

    def rows(self) -> list[SeriesRow]:
        """Every series, oldest first."""
        with self._lock:
            rows = self._connection.execute("SELECT * FROM series ORDER BY first_received, key").fetchall()
        return [_row(dict(row)) for row in rows]

    def counts(self) -> dict[str, int]:
        """Series per state (every state present, zeros included)."""
        with self._lock:
            found = dict(self._connection.execute("SELECT state, COUNT(*) FROM series GROUP BY state").fetchall())
        return {state: int(found.get(state, 0)) for state in STATES}

    def keys(self) -> set[str]:
        """Every series key."""
        with self._lock:
            return {r[0] for r in self._connection.execute("SELECT key FROM series")}


def _row(values: dict[str, Any]) -> SeriesRow:
    entry = values.get("entry")
    return SeriesRow(**{**values, "entry": json.loads(entry) if entry else None})
