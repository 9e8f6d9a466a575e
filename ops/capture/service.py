"""The capture service: read the slot, store whole transactions as segments, then advance.

Each cycle reads what the slot holds up to the server's flushed WAL position with
`pg_logical_slot_peek_binary_changes` (peek: nothing is consumed), through a server-side cursor
so that at most one fetch of rows is in memory, and cuts a segment at `flush_bytes` or at the
end of what is there. Only once a segment is stored does the slot advance to its end: a kill -9
anywhere leaves the slot where the stored segments end (a segment stored again after a kill
between store and advance keeps its first copy; replay applies a transaction once).

Boundaries: a migration (a change to alembic_version in the stream) ends the segment before
it, and a full backup is taken once it is stored, so that replay never crosses a revision; a
transaction too big to hold (`max_transaction_bytes`) is skipped the same way: the segment
ends before it, the next starts after it, and the full backup taken then contains it.

A database that restarts or a store that fails is waited for (growing pauses, each logged in
one line); nothing is advanced until the segment is stored.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import errors, sql

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.encryption import recipients_for
from ops.capture.assemble import Assembled, Assembler
from ops.capture.segments import (
    Origin,
    Transaction,
    lsn_text,
    segment_facts,
    write_segment,
)
from ops.capture.slot import (
    CaptureRefused,
    captured_tables,
    ensure_publication,
    ensure_slot,
    lsn_int,
    missing_replication,
    peek_options,
    release_lock,
    require_logical,
    take_lock,
)
from ops.core.catalog import current_revision
from ops.core.config import Settings
from ops.core.db import connect, database_identity, first_line
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter

MB = 1 << 20
PEEK_CHANGES = 20_000  # rows per read: bounds the server's work when far behind
FETCH_ROWS = 2_000  # rows per fetch from the cursor: what the client holds at once
# A quiet database still writes WAL (other databases, checkpoints) that the slot keeps: past
# this much, an empty segment records "nothing until here" and the slot advances.
IDLE_ADVANCE_BYTES = 16 * MB
MAX_PAUSE = 60.0


@dataclass
class CaptureOptions:
    slot: str = "tasklets_capture"
    publication: str | None = None  # default: the slot's name
    flush_every: float = 5.0
    flush_bytes: int = 16 * MB
    max_transaction_bytes: int = 64 * MB
    once: bool = False  # drain what is there, then return
    initial_backup: bool = True  # a full backup when the slot is created (a base to replay on)

    @property
    def publication_name(self) -> str:
        return self.publication or self.slot


@dataclass
class Progress:
    """What the service did so far (the metrics read it)."""

    segments: int = 0
    transactions: int = 0
    changes: int = 0
    bytes: int = 0
    backups: int = 0
    covered_until: datetime | None = None  # every change committed before this is stored
    last_flush: datetime | None = None
    retained_wal_bytes: int | None = None
    cycle_seconds: float | None = None  # how long the last read-store-advance took

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        if self.covered_until is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.covered_until).total_seconds())


@dataclass
class _Batch:
    """The transactions read but not stored yet, and the LSN range they will be stored as."""

    start: int  # where the slot stands: the next segment starts after it
    end: int = 0
    pending: list[Transaction] = field(default_factory=list)
    size: int = 0
    rows_read: int = 0

    def __post_init__(self) -> None:
        self.end = self.end or self.start

    def rows(self, cursor: psycopg.Cursor) -> Iterator[bytes]:
        while fetched := cursor.fetchmany(FETCH_ROWS):
            self.rows_read += len(fetched)
            for (data,) in fetched:
                yield data


class Capture:
    """One capture on one database and slot. `run()` loops; `cycle()` is one read."""

    def __init__(self, settings: Settings, archive: Archive, options: CaptureOptions, *,
                 report: Reporter = SILENT) -> None:
        self.settings = settings
        self.archive = archive
        self.options = options
        self.report = report
        self.progress = Progress()
        self.stop_event = threading.Event()
        self.recipients = recipients_for(settings)
        self.conn: psycopg.Connection | None = None
        self.revision: str | None = None
        self.origin: Origin | None = None
        self.backup_due = False
        self.read_upto = 0  # the WAL position the last cycle read up to
        self._assembler = Assembler(options.max_transaction_bytes)

    # --- set-up ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, refuse what cannot work, hold the slot's lock, make slot + publication."""
        conn = connect(self.settings, autocommit=True)
        try:
            conn.execute("SET application_name = 'tasklets-capture'")
            require_logical(conn)
            take_lock(conn, self.options.slot)
            ensure_publication(conn, self.options.publication_name, captured_tables(conn))
            created = ensure_slot(conn, self.options.slot)
            identity = database_identity(conn)
            self.origin = Origin(identity.system_identifier or "", identity.database)
            if self.revision is None or created:
                self.revision = (current_revision(conn) if created
                                 else self._stored_revision(conn))
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self._assembler = Assembler(self.options.max_transaction_bytes)  # relations re-sent
        if created:
            self.report.line(f"📌 created replication slot {self.options.slot}")
            self.backup_due = self.options.initial_backup

    def _stored_revision(self, conn: psycopg.Connection) -> str | None:
        """The revision the changes the slot holds were made at: the newest stored segment's
        when it ends where the slot stands (a migration while capture was down is then still
        ahead in the stream), else the database's."""
        confirmed = self._confirmed(conn)
        ending = [info for info in self.archive.segments() if info.end_lsn == confirmed]
        if ending:
            revision = segment_facts(self.archive, ending[-1]).revision
            if revision is not None:
                return revision
        return current_revision(conn)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                release_lock(self.conn, self.options.slot)
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> Progress:
        """Cycle every flush_every seconds until stopped (or, with once, until caught up)."""
        pause = 0.0
        target: int | None = None  # with once: the WAL written before it started
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    if self.conn is None:
                        self.open()
                    if target is None and self.options.once:
                        target = self._insert_position()
                    caught_up = self.cycle()
                    self.progress.cycle_seconds = time.monotonic() - started
                    self._take_backup_if_due()
                    pause = 0.0
                except CaptureRefused:
                    raise
                except (OpsError, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    if self.options.once:
                        raise
                    pause = min(max(pause * 2, 1.0), MAX_PAUSE)
                    message = exc.message if isinstance(exc, OpsError) else first_line(exc)
                    self.report.warn(f"⚠️  capture: {message}; retrying in {pause:.0f}s")
                    if isinstance(exc, psycopg.Error):
                        self.close()
                    self.stop_event.wait(pause)
                    continue
                if self.options.once and caught_up:
                    if self.read_upto >= (target or 0):
                        break
                    time.sleep(0.05)  # the last commits are not flushed yet (asynchronous)
                    continue
                if caught_up:
                    self.stop_event.wait(max(0.0, self.options.flush_every
                                             - (time.monotonic() - started)))
        finally:
            self.close()
        return self.progress

    def _insert_position(self) -> int:
        assert self.conn is not None
        return lsn_int(self.conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]) or 0

    def cycle(self) -> bool:
        """One read of the slot, stored in segments; True when everything up to the WAL
        position read at its start is stored (False: more is waiting)."""
        assert self.conn is not None
        conn = self.conn
        upto_text, moment = self._mark(conn)
        upto = lsn_int(upto_text) or 0
        self.read_upto = upto
        query = sql.SQL("SELECT data FROM pg_logical_slot_peek_binary_changes({}, {}::pg_lsn, "
                        "{}, {})").format(sql.Literal(self.options.slot),
                                          sql.Literal(upto_text), sql.Literal(PEEK_CHANGES),
                                          peek_options(self.options.publication_name))
        batch = _Batch(self._confirmed(conn))
        try:
            with conn.transaction(), conn.cursor(name="tasklets_capture_peek") as cursor:
                cursor.execute(query)
                for item in self._assembler.feed(batch.rows(cursor)):
                    self._take(batch, item)
        except errors.ObjectInUse:  # a `capture status` peeking right now: read again soon
            time.sleep(0.1)
            return False
        except errors.InsufficientPrivilege as exc:
            raise missing_replication(exc) from None
        except errors.ObjectNotInPrerequisiteState as exc:  # invalidated: WAL it needs is gone
            raise CaptureRefused(
                f"replication slot {self.options.slot} cannot be read: {first_line(exc)}",
                hint="Changes since its position are lost to capture: drop the slot (capture "
                "stop --drop-slot) and start capture again; it takes a new full backup.") \
                from None
        complete = batch.rows_read < PEEK_CHANGES
        if complete:
            end = max(upto, batch.end)
            if batch.pending or end - batch.start >= IDLE_ADVANCE_BYTES:
                self._flush(batch, end, complete_until=moment)
            self.progress.covered_until = moment
        else:
            self._flush(batch, batch.end)
        self.progress.retained_wal_bytes = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (self.options.slot,)).fetchone()[0]
        return complete

    def _mark(self, conn: psycopg.Connection) -> tuple[str, datetime]:
        """A WAL position to read up to, and when it was taken: the end of a record of our own,
        flushed. Every commit before it is then whole on disk and decoded by the read, so the
        slot may advance there (the flushed position alone may cut a record in two: a commit
        that straddles it would be skipped once the slot stood past its start)."""
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = local")  # the commit flushes it
            # the time first: a commit stamped before it has its record before the marker
            moment, marker = conn.execute(
                "SELECT clock_timestamp(), pg_logical_emit_message(true, 'tasklets-capture', "
                "'')::text").fetchone()
        return marker, moment

    def _take(self, batch: _Batch, item: Assembled) -> None:
        """Add one transaction to the batch: after ending the segment before it when it is a
        boundary (a migration, a transaction too big to hold), and cutting when big enough."""
        assert self.conn is not None
        tx = item.transaction
        if item.revision is not None and item.revision != self.revision:
            self._flush(batch, batch.end)
            self.report.line(f"🔀 migration to {item.revision} in the changes (xid {tx.xid}): "
                             "a full backup follows")
            self.revision, self.backup_due = item.revision, True
            ensure_publication(self.conn, self.options.publication_name,
                               captured_tables(self.conn))
        if item.oversize:
            self._flush(batch, batch.end)
            self.report.warn(f"⚠️  transaction {tx.xid} holds more than "
                             f"{self.options.max_transaction_bytes // MB} MB of changes: not "
                             "kept as changes; a full backup follows")
            self._advance(tx.end_lsn)
            batch.start = batch.end = tx.end_lsn
            self.backup_due = True
            return
        if tx.changes or item.revision is not None:  # not an empty one (before PostgreSQL 15)
            batch.pending.append(tx)
            batch.size += item.size
        batch.end = tx.end_lsn
        if batch.size >= self.options.flush_bytes:
            self._flush(batch, batch.end)

    def _confirmed(self, conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                           "WHERE slot_name = %s", (self.options.slot,)).fetchone()
        if row is None:
            raise CaptureRefused(f"replication slot {self.options.slot} is gone (dropped while "
                                 "capture ran)", hint="Start capture again: it creates the "
                                 "slot and takes a full backup to start from.")
        return lsn_int(row[0]) or 0

    def _flush(self, batch: _Batch, end: int, *,
               complete_until: datetime | None = None) -> None:
        """Store the batch as the segment (start, end], advance the slot to end, and start the
        next batch there."""
        if end <= batch.start:
            return
        assert self.origin is not None
        pending, start = batch.pending, batch.start
        info = write_segment(self.archive, pending, start_lsn=start, end_lsn=end,
                             revision=self.revision, origin=self.origin,
                             recipients=self.recipients, complete_until=complete_until)
        self._advance(end)
        batch.pending, batch.size, batch.start, batch.end = [], 0, end, end
        progress = self.progress
        progress.segments += 1
        progress.transactions += len(pending)
        progress.changes += sum(len(tx.changes) for tx in pending)
        progress.bytes += info.size or 0
        progress.last_flush = datetime.now(UTC)
        self.report.line(f"💾 {info.name}: {len(pending)} transactions "
                         f"({lsn_text(start)} → {lsn_text(end)})")

    def _advance(self, end: int) -> None:
        assert self.conn is not None
        self.conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                     (self.options.slot, lsn_text(end)))

    def _take_backup_if_due(self) -> None:
        if not self.backup_due:
            return
        result = backup(self.settings, archive=self.archive, report=self.report)
        self.backup_due = False
        self.progress.backups += 1
        self.report.line(f"📦 full backup {result.name} taken (a base for replay)")


def run_capture(settings: Settings, archive: Archive, options: CaptureOptions, *,
                report: Reporter = SILENT,
                on_start: Callable[[Capture], None] | None = None) -> Progress:
    """Open the capture (refusing what cannot work, before any loop) and run it."""
    capture = Capture(settings, archive, options, report=report)
    capture.open()
    if on_start is not None:
        on_start(capture)
    return capture.run()
