"""The node's SQLite queue: states, quiet-period completion, generations, backoff, recovery, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medseg.pacs.node_disk import DiskBudget, instance_name, series_key
from medseg.pacs.queue import SeriesQueue

REPO = Path(__file__).resolve().parents[2]


def test_a_series_completes_only_after_the_quiet_period(tmp_path):
    queue = SeriesQueue(tmp_path)
    queue.record_instance("a", "1.2.3", "1.2", now=100.0)
    queue.record_instance("a", "1.2.3", "1.2", now=104.0)
    assert queue.mark_complete(5.0, now=108.9) == []
    assert queue.get("a").state == "received" and queue.get("a").instances == 2
    assert queue.mark_complete(5.0, now=109.0) == ["a"]
    assert queue.get("a").state == "complete"


def test_claim_segment_send_in_order_and_generation_guard(tmp_path):
    queue = SeriesQueue(tmp_path)
    queue.record_instance("old", "1.1", "1", now=1.0)
    queue.record_instance("new", "2.2", "2", now=2.0)
    queue.mark_complete(0.0, now=10.0)
    row = queue.claim_complete(now=11.0)
    assert row.key == "old" and row.state == "segmenting" and queue.get("old").state == "segmenting"
    # A new object of the series while it is segmented: the worker's result is not recorded over it.
    queue.record_instance("old", "1.1", "1", now=12.0)
    assert not queue.finish_segmentation("old", row.generation, entry={}, case_id="c", seg_file="outbox/old.dcm")
    assert queue.get("old").state == "received"
    second = queue.claim_complete(now=13.0)
    assert second.key == "new"
    assert queue.finish_segmentation("new", second.generation, entry={"status": "ok"}, case_id="c2",
                                     seg_file="outbox/new.dcm", now=14.0)
    due = queue.due_for_sending(now=14.0)
    assert due.key == "new" and due.seg_file == "outbox/new.dcm" and due.entry == {"status": "ok"}
    assert queue.mark_sent("new", due.generation, now=15.0)
    assert queue.get("new").state == "sent" and queue.get("new").sent_at == 15.0
    assert not queue.mark_sent("new", due.generation), "sent is marked once"


def test_send_failures_back_off_exponentially_then_fail(tmp_path):
    queue = SeriesQueue(tmp_path)
    queue.record_instance("s", "1.1", "1", now=0.0)
    queue.mark_complete(0.0, now=1.0)
    row = queue.claim_complete(now=1.0)
    queue.finish_segmentation("s", row.generation, entry={}, case_id="c", seg_file="outbox/s.dcm", now=1.0)
    delays = []
    now = 1.0
    for _ in range(4):
        assert queue.due_for_sending(now=now) is not None
        state = queue.mark_send_failed("s", row.generation, "refused", max_attempts=5, backoff_s=2.0,
                                       max_backoff_s=10.0, now=now)
        assert state == "segmented"
        after = queue.get("s")
        delays.append(after.next_try - now)
        assert queue.due_for_sending(now=after.next_try - 0.01) is None, "not before the backoff"
        now = after.next_try
    assert delays == [2.0, 4.0, 8.0, 10.0]
    assert queue.mark_send_failed("s", row.generation, "refused again", max_attempts=5, backoff_s=2.0,
                                  max_backoff_s=10.0, now=now) == "failed"
    failed = queue.get("s")
    assert failed.state == "failed" and failed.attempts == 5 and failed.reason == "refused again"
    assert queue.due_for_sending(now=now + 1e6) is None
    # The PACS pushes the series again: a fresh round.
    assert queue.record_instance("s", "1.1", "1", now=now + 5) == "failed"
    again = queue.get("s")
    assert again.state == "received" and again.attempts == 0 and again.reason is None


def test_recover_puts_segmenting_back_and_keeps_the_rest(tmp_path):
    queue = SeriesQueue(tmp_path)
    for key in ("a", "b", "c"):
        queue.record_instance(key, f"1.{key}", "1", now=0.0)
    queue.mark_complete(0.0, now=1.0)
    claimed = queue.claim_complete(now=1.0)
    other = queue.claim_complete(now=1.0)
    queue.finish_segmentation(other.key, other.generation, entry={}, case_id="x", seg_file="outbox/x.dcm")
    queue.close()
    reopened = SeriesQueue(tmp_path)
    assert reopened.recover() == [claimed.key]
    assert reopened.counts() == {"received": 0, "complete": 2, "segmenting": 0, "segmented": 1, "sent": 0,
                                 "failed": 0}


def test_wal_mode_and_a_kill_mid_transaction_leaves_the_old_state(tmp_path):
    queue = SeriesQueue(tmp_path)
    queue.record_instance("a", "1.1", "1", now=0.0)
    queue.close()
    with sqlite3.connect(tmp_path / "queue.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A process that dies (SIGKILL) inside a transaction: its change must not survive.
    script = textwrap.dedent(f"""
        import os, signal
        from medseg.pacs.queue import SeriesQueue
        queue = SeriesQueue({str(tmp_path)!r})
        with queue._transaction() as db:
            db.execute("UPDATE series SET state = 'sent' WHERE key = 'a'")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=300)
    assert result.returncode == -signal.SIGKILL
    assert SeriesQueue(tmp_path).get("a").state == "received"


def test_hashed_names_and_the_disk_budget(tmp_path):
    key = series_key("1.2.840.99999.1")
    assert len(key) == 16 and "99999" not in key and key == series_key("1.2.840.99999.1")
    assert instance_name("1.2.3").endswith(".dcm") and "1.2.3" not in instance_name("1.2.3")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"x" * 1000)
    os.symlink("/etc/passwd", tmp_path / "link")  # links are not followed or counted
    budget = DiskBudget(tmp_path, max_bytes=1500)
    assert budget.used == 1000
    assert budget.fits(500) and not budget.fits(501)
    budget.add(400)
    assert not budget.fits(101)
    assert budget.recount() == 1000


@pytest.mark.parametrize("bad", [b"not a database at all" * 100])
def test_a_damaged_queue_is_an_error_naming_the_file(tmp_path, bad):
    from medseg.errors import OutputError

    (tmp_path / "queue.sqlite3").write_bytes(bad)
    with pytest.raises(OutputError, match="queue.sqlite3: cannot open the node's queue"):
        SeriesQueue(tmp_path)
