"""Parallel backup: several connections share one exported snapshot, each streams whole tables
into a part file, and the parts are spliced into the backup in table order. The backup's writer
makes the part files (ops.backup.writer: in a private scratch directory, encrypted when the
backup is).

Why: row_to_json runs in the server backend, one core per connection; on a 2-core machine two
streams (each with its own compressor) roughly halve a large backup. The result is byte-for-byte the
layout a single stream writes, with the same per-table sha256 and row counts.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import sql

from ops.backup.compression import FrameWriter, frame_writer
from ops.core.catalog import Table
from ops.core.db import SNAPSHOT_SETTINGS, pin_settings
from ops.core.errors import OpsError

PartStreamer = Callable[[psycopg.Connection, Table, Callable[[bytes], None]], tuple[int, str]]


class PartSink(Protocol):
    """A part file being written (`path`), and its bytes' way there."""

    path: Path

    def write(self, data: bytes, /) -> None: ...

    def close(self) -> None: ...


@dataclass
class Part:
    path: Path
    rows: int
    sha256: str


class PartFile:
    """One table's row lines (whole zstd frames / gzip members when compressing)."""

    def __init__(self, sink: PartSink, compression: str | None) -> None:
        self.path = sink.path
        self._raw = sink
        self._gz: FrameWriter | None = None
        if compression:
            # frame_writer takes any object with write() (a PartSink here), typed BinaryIO
            self._gz = frame_writer(compression, sink)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        (self._gz or self._raw).write(data)

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


@dataclass
class PartStreams:
    """Tables being streamed into part files by a pool of snapshot-sharing connections."""

    futures: dict[str, Future[Part]]
    executor: ThreadPoolExecutor
    connections: list[psycopg.Connection] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __contains__(self, table: str) -> bool:
        return table in self.futures

    def part(self, table: str) -> Part:
        """The table's finished part (waits for it; raises what its stream raised)."""
        return self.futures[table].result()

    def close(self) -> None:
        """Stop the streams (tables not started yet are skipped), wait until none writes any
        more, and close their connections."""
        self.stopping.set()
        self.executor.shutdown(wait=True, cancel_futures=True)  # joins the running streams
        for conn in self.connections:
            conn.close()


def _lock_now(conn: psycopg.Connection, tables: list[Table]) -> None:
    """ACCESS SHARE on the tables, or OpsError at once.

    The exporting connection holds these locks already, so nobody can take them away; but a
    lock request queues behind a waiting one, and an ALTER TABLE waiting for the exporter
    would make this connection wait for it while the exporter waits for this connection: a
    deadlock the server cannot see. NOWAIT turns it into a failed backup and a finished ALTER.
    """
    try:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT").format(
            sql.SQL(", ").join(t.ident for t in tables)))
    except psycopg.errors.LockNotAvailable:
        raise OpsError("a schema change (ALTER TABLE, TRUNCATE) is waiting for the backup's "
                       "tables; the backup stopped so that it can go on, and no backup file "
                       "was written",
                       hint="Run the backup again once that change has finished.") from None


def stream_parts(open_connection: Callable[[], psycopg.Connection], snapshot: str,
                 tables: list[Table], sizes: dict[str, int], jobs: int,
                 new_part: Callable[[int], PartSink], compression: str | None,
                 stream: PartStreamer) -> PartStreams:
    """Stream `tables` over `jobs` connections, biggest first (each free connection takes the
    next, which balances them); each table's future resolves to its finished part file.

    `open_connection` must return an autocommit connection: each connection begins its
    transaction with SET TRANSACTION SNAPSHOT. `new_part(n)` creates the n-th part file.
    """
    local = threading.local()
    counter = itertools.count()
    lock = threading.Lock()
    streams: PartStreams

    def connection() -> psycopg.Connection:
        if getattr(local, "conn", None) is None:
            conn = open_connection()
            with lock:
                streams.connections.append(conn)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # must come first
            _lock_now(conn, tables)
            pin_settings(conn, SNAPSHOT_SETTINGS, local=True)
            local.conn = conn
        found: psycopg.Connection = local.conn
        return found

    def work(table: Table) -> Part:
        if streams.stopping.is_set():
            raise RuntimeError("stopped")
        part = PartFile(new_part(next(counter)), compression)
        try:
            rows, digest = stream(connection(), table, part.write)
        finally:
            part.close()
        return Part(part.path, rows, digest)

    executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="backup-stream")
    streams = PartStreams({}, executor)
    for table in sorted(tables, key=lambda t: (-sizes.get(t.name, 0), t.name)):
        streams.futures[table.name] = executor.submit(work, table)
    return streams
