"""The capture service: read the slot, store whole transactions as segments, then advance.

Changes are read over a replication connection (`stream.py`: the server decodes each WAL
record once) or, where one cannot be had (a pooler), with `pg_logical_slot_peek_binary_changes`
(peek: nothing is consumed) through a server-side cursor. Each cycle writes a marker (a logical
message) and reads up to it, so it knows every commit before the marker's moment is read; it
cuts a segment at `flush_bytes` or at the marker. Only once a segment is stored does the slot
advance to its end: a kill -9 anywhere leaves the slot where the stored segments end (a segment
stored again after a kill between store and advance keeps its first copy; replay applies a
transaction once).

Cycles are timed for the recovery point: the next marker is written `flush_every` after the
last minus how long the last cycle took, so the newest change not stored is at most about
`flush_every` old when the cycle that stores it ends.

Boundaries: a migration (a change to alembic_version in the stream) ends the segment before
it, and a full backup is taken once it is stored, so that replay never crosses a revision; a
transaction too big to hold (`max_transaction_bytes`) is skipped the same way: the segment
ends before it, the next starts after it, and the full backup taken then contains it. A
capture killed before that backup takes it when it opens again (`base_missing`).

A database that restarts or a store that fails is waited for (growing pauses, each logged in
one line); nothing is advanced until the segment is stored.
"""

from __future__ import annotations

import contextlib
import secrets
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
from ops.capture.coverage import base_missing
from ops.capture.segments import (
    Encoded,
    Origin,
    encode,
    lsn_text,
    segment_facts,
    write_segment,
)
from ops.capture.slot import (
    MARKER_PREFIX,
    CaptureRefused,
    captured_tables,
    covered_name,
    ensure_publication,
    ensure_slot,
    lsn_int,
    missing_replication,
    peek_options,
    release_lock,
    require_logical,
    take_lock,
)
from ops.capture.stream import ReplicationStream, StreamRefused
from ops.core.catalog import current_revision
from ops.core.config import Settings
from ops.core.db import connect, database_identity, first_line, scalar
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter

MB = 1 << 20
PEEK_CHANGES = 1_000_000  # rows per read: bounds the server's work when far behind
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
    read: str = "stream"  # "stream" (a replication connection; SQL where refused) | "sql"

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
    pending: list[Encoded] = field(default_factory=list)
    size: int = 0

    def __post_init__(self) -> None:
        self.end = self.end or self.start


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
        self.stream: ReplicationStream | None = None
        self.revision: str | None = None
        self.origin: Origin | None = None
        self.backup_due = False
        self.read_upto = 0  # the WAL position the last cycle read up to
        self.position = 0  # where the slot stands: everything before it is stored
        self._batch: _Batch | None = None
        self._said_sql = False
        self._assembler = Assembler(options.max_transaction_bytes)

    # --- set-up ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, refuse what cannot work, hold the slot's lock, make slot + publication,
        and start the replication stream (or say why changes are read over SQL)."""
        conn = connect(self.settings, autocommit=True)
        try:
            # a capture opening again (after a failed store, a lost database) goes on
            # naming the moment it last had every change stored: status reads its lag there
            covered = self.progress.covered_until
            conn.execute(sql.SQL("SET application_name = {}").format(sql.Literal(
                covered_name(covered) if covered is not None else "tasklets-capture")))
            require_logical(conn)
            take_lock(conn, self.options.slot)
            ensure_publication(conn, self.options.publication_name, captured_tables(conn))
            created = ensure_slot(conn, self.options.slot)
            identity = database_identity(conn)
            self.origin = Origin(identity.system_identifier or "", identity.database)
            self.position = self._confirmed(conn)
            if self.revision is None or created:
                self.revision = (current_revision(conn) if created
                                 else self._stored_revision(conn))
            if self.options.read == "stream":
                self.stream = self._open_stream()
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        if created:
            self.report.line(f"📌 created replication slot {self.options.slot}")
            self.backup_due = self.options.initial_backup
            return
        missing = base_missing(self.archive, self.position, self.revision,
                               initial=self.options.initial_backup)
        if missing is not None:  # owed by a capture killed before it took it
            self.report.line(f"📦 a full backup is due: {missing}")
            self.backup_due = True

    def _open_stream(self) -> ReplicationStream | None:
        """The replication stream; None (changes read over SQL) where it is refused. A slot
        still held by the stream of a capture that was just killed frees within moments."""
        for attempt in range(50):
            try:
                return ReplicationStream.open(self.settings.database_url, self.options.slot,
                                              self.options.publication_name)
            except StreamRefused as exc:
                if not self._said_sql:
                    self._said_sql = True
                    self.report.line(
                        f"ℹ️  reading changes over SQL: a replication connection is refused "
                        f"({exc}); connect capture to PostgreSQL itself (not a pooler), with a "
                        "wal sender free, to stream them with less work for the database")
                return None
            except errors.ObjectInUse:
                time.sleep(0.1 * min(attempt + 1, 5))
            except errors.ObjectNotInPrerequisiteState as exc:
                raise self._invalidated(exc) from None
            except errors.InsufficientPrivilege as exc:
                raise missing_replication(exc) from None
        raise OpsError(f"replication slot {self.options.slot} is in use by another session",
                       hint="Stop the other reader of the slot (capture status shows it).")

    def _stored_revision(self, conn: psycopg.Connection) -> str | None:
        """The revision the changes the slot holds were made at: the newest stored segment's
        when it ends where the slot stands, `position` (a migration while capture was down is
        then still ahead in the stream), else the database's."""
        ending = [info for info in self.archive.segments() if info.end_lsn == self.position]
        if ending:
            revision = segment_facts(self.archive, ending[-1]).revision
            if revision is not None:
                return revision
        return current_revision(conn)

    def _close_stream(self) -> None:
        """Close the stream; what it read and did not store is read again from the slot by
        the next one (which sends the tables' Relation messages again)."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self._batch = None
        self._assembler = Assembler(self.options.max_transaction_bytes)

    def close(self) -> None:
        self._close_stream()
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                release_lock(self.conn, self.options.slot)
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> Progress:
        """Cycle until stopped (or, with once, until caught up), each cycle timed so that the
        recovery point stays near flush_every."""
        pause = 0.0
        target: int | None = None  # with once: the WAL written before it started
        next_cycle = time.monotonic()
        recent: list[float] = []  # how long the last cycles took: the next starts that early
        try:
            while not self.stop_event.is_set():
                try:
                    if self.conn is None:
                        self.open()
                    if target is None and self.options.once:
                        target = self._insert_position()
                    self._read_until(next_cycle)
                    started = time.monotonic()
                    caught_up = self.cycle()
                    took = self.progress.cycle_seconds = time.monotonic() - started
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
                    self.close()  # start again from where the slot stands
                    self.stop_event.wait(pause)
                    next_cycle = time.monotonic()
                    continue
                if self.options.once and caught_up:
                    if self.read_upto >= (target or 0):
                        break
                    time.sleep(0.05)  # the last commits are not flushed yet (asynchronous)
                    continue
                recent = [*recent[-4:], took]
                next_cycle = started + max(0.0, self.options.flush_every - max(recent)) \
                    if caught_up and not self.options.once else time.monotonic()
        finally:
            self.close()
        return self.progress

    def _read_until(self, moment: float) -> None:
        """Until `moment` (time.monotonic()): stream what arrives into the batch, so that the
        next cycle only reads up to its marker; over SQL, wait."""
        while not self.stop_event.is_set() and (left := moment - time.monotonic()) > 0:
            if self.stream is None:
                self.stop_event.wait(left)
                return
            batch = self._current_batch()
            rows = self.stream.messages(time.monotonic() + min(left, 0.5))
            for item in self._assembler.feed(rows):
                self._take(batch, item)

    def _insert_position(self) -> int:
        assert self.conn is not None
        return lsn_int(scalar(self.conn, "SELECT pg_current_wal_insert_lsn()::text")) or 0

    def _current_batch(self) -> _Batch:
        if self._batch is None:
            self._batch = _Batch(self.position)
        return self._batch

    def cycle(self) -> bool:
        """One read up to a marker written now, stored in segments; True when everything
        before the marker is stored (False: more is waiting)."""
        assert self.conn is not None
        conn = self.conn
        token, upto_text, moment = self._mark(conn)
        upto = lsn_int(upto_text) or 0
        self.read_upto = upto
        batch = self._current_batch()
        if self.stream is not None:
            complete = self._read_stream_to(token, batch)
        else:
            complete = self._peek(upto_text, batch)
        if complete:
            end = max(upto, batch.end)
            if batch.pending or end - batch.start >= IDLE_ADVANCE_BYTES:
                self._flush(batch, end, complete_until=moment)
            self._covered(moment)
        else:
            self._flush(batch, batch.end)
        retained = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (self.options.slot,)).fetchone()
        if retained is None:
            raise self._slot_gone()
        self.progress.retained_wal_bytes = retained[0]
        return complete

    def _read_stream_to(self, token: bytes, batch: _Batch) -> bool:
        """Stream into the batch up to the commit of the marker `token`; False when it has not
        arrived within flush_every (a backlog: the cycle stores what it read)."""
        stream = self.stream
        assert stream is not None
        seen = False

        def upto_marker() -> Iterator[bytes]:
            nonlocal seen
            marked = False
            for data in stream.messages(time.monotonic() + max(self.options.flush_every, 1.0)):
                yield data
                if data[:1] == b"M" and data.endswith(token):
                    marked = True
                elif marked and data[:1] == b"C":
                    seen = True
                    return

        for item in self._assembler.feed(upto_marker()):
            self._take(batch, item)
        return seen

    def _peek(self, upto_text: str, batch: _Batch) -> bool:
        """Read what the slot holds up to the marker with SQL; False when PEEK_CHANGES rows
        came back (more is waiting)."""
        assert self.conn is not None
        query = sql.SQL("SELECT data FROM pg_logical_slot_peek_binary_changes({}, {}::pg_lsn, "
                        "{}, {})").format(sql.Literal(self.options.slot),
                                          sql.Literal(upto_text), sql.Literal(PEEK_CHANGES),
                                          peek_options(self.options.publication_name))
        read = 0

        def rows(cursor: psycopg.Cursor) -> Iterator[bytes]:
            nonlocal read
            while fetched := cursor.fetchmany(FETCH_ROWS):
                read += len(fetched)
                for (data,) in fetched:
                    yield data

        try:
            with self.conn.transaction(), self.conn.cursor(name="tasklets_capture_peek",
                                                           binary=True) as cursor:
                cursor.execute(query)
                for item in self._assembler.feed(rows(cursor)):
                    self._take(batch, item)
        except errors.ObjectInUse:  # a `capture status` peeking right now: read again soon
            time.sleep(0.1)
            return False
        except errors.InsufficientPrivilege as exc:
            raise missing_replication(exc) from None
        except errors.ObjectNotInPrerequisiteState as exc:
            raise self._invalidated(exc) from None
        except errors.UndefinedObject:  # the slot, or the publication, does not exist
            self._confirmed(self.conn)  # refuses when it is the slot
            raise
        return read < PEEK_CHANGES

    def _invalidated(self, exc: BaseException) -> CaptureRefused:
        """The slot lost WAL it needs (max_slot_wal_keep_size): its changes are gone."""
        return CaptureRefused(
            f"replication slot {self.options.slot} cannot be read: {first_line(exc)}",
            hint="Changes since its position are lost to capture: drop the slot (capture "
            "stop --drop-slot) and start capture again; it takes a new full backup.")

    def _covered(self, moment: datetime) -> None:
        """Every change committed before `moment` is stored: the recovery point, shown to
        `capture status` through this session's application_name (a capture holding its slot
        with a replication stream leaves the slot to nobody else to peek at)."""
        assert self.conn is not None
        progress = self.progress
        if progress.covered_until is not None and progress.covered_until >= moment:
            return
        progress.covered_until = moment
        self.conn.execute(sql.SQL("SET application_name = {}").format(
            sql.Literal(covered_name(moment))))

    def _mark(self, conn: psycopg.Connection) -> tuple[bytes, str, datetime]:
        """A marker to read up to, its WAL position, and when it was written: a logical
        message of our own, flushed. Every commit before it is then whole on disk and decoded
        by the read, so the slot may advance there (the flushed position alone may cut a
        record in two: a commit that straddles it would be skipped once the slot stood past
        its start)."""
        token = secrets.token_hex(8).encode()
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = local")  # the commit flushes it
            # the time first: a commit stamped before it has its record before the marker
            row = conn.execute(
                "SELECT clock_timestamp(), pg_logical_emit_message(true, %s, %s)::text",
                (MARKER_PREFIX, token)).fetchone()
            assert row is not None  # a SELECT without FROM returns one row
            moment, marker = row
        return token, marker, moment

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
        if tx.changes or item.revision is not None:  # not a marker or an empty one
            batch.pending.append(encode(tx))
            batch.size += item.size
        batch.end = tx.end_lsn
        if batch.size >= self.options.flush_bytes:
            self._flush(batch, batch.end)

    def _confirmed(self, conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                           "WHERE slot_name = %s", (self.options.slot,)).fetchone()
        if row is None:
            raise self._slot_gone()
        return lsn_int(row[0]) or 0

    def _slot_gone(self) -> CaptureRefused:
        """The slot was dropped while capture ran: over SQL it is held only during a read, so
        `capture stop --drop-slot` succeeds between two."""
        return CaptureRefused(f"replication slot {self.options.slot} is gone (dropped while "
                              "capture ran)", hint="Start capture again: it creates the slot "
                              "and takes a full backup to start from.")

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
        progress.changes += sum(tx.change_count for tx in pending)
        progress.bytes += info.size or 0
        progress.last_flush = datetime.now(UTC)
        if pending and complete_until is None:
            self._covered(pending[-1].commit_time)
        self.report.line(f"💾 {info.name}: {len(pending)} transactions "
                         f"({lsn_text(start)} → {lsn_text(end)})")

    def _advance(self, end: int) -> None:
        assert self.conn is not None
        if self.stream is not None:
            self.stream.confirm(end)
        else:
            self.conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                              (self.options.slot, lsn_text(end)))
        self.position = end

    def _take_backup_if_due(self) -> None:
        if not self.backup_due:
            return
        streaming = self.stream is not None
        if streaming:  # unread for the whole backup, the server would end it after its
            self._close_stream()  # wal_sender_timeout (60 s): start again from the slot after
        result = backup(self.settings, archive=self.archive, report=self.report)
        if streaming:
            self.stream = self._open_stream()
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
