"""Parallel backup: several connections share one exported snapshot, each streams whole tables
into a hidden part file, and the parts are spliced into the backup in table order.

Why: row_to_json runs in the server backend, one core per connection; on a 2-core machine two
streams (each with its own gzip) roughly halve a large backup. The result is byte-for-byte the
layout a single stream writes, with the same per-table sha256 and row counts.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ops.core.catalog import APP_SCHEMA, Table

PartStreamer = Callable[[psycopg.Connection, Table, Callable[[bytes], None]], tuple[int, str]]


@dataclass
class Part:
    path: Path
    rows: int
    sha256: str


def table_sizes(conn: psycopg.Connection, tables: list[Table]) -> dict[str, int]:
    found = conn.execute(
        "SELECT c.relname, pg_table_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (APP_SCHEMA, [t.name for t in tables])).fetchall()
    return dict(found)


def balance(tables: list[Table], sizes: dict[str, int], streams: int) -> list[list[Table]]:
    """Tables in `streams` bins of about equal size, biggest first (deterministic)."""
    bins: list[list[Table]] = [[] for _ in range(streams)]
    loads = [0] * streams
    for table in sorted(tables, key=lambda t: (-sizes.get(t.name, 0), t.name)):
        lightest = loads.index(min(loads))
        bins[lightest].append(table)
        loads[lightest] += sizes.get(table.name, 0)
    return [b for b in bins if b]


class PartFile:
    """One table's row lines (gzip member when compressing), written beside the target."""

    def __init__(self, path: Path, compress: bool) -> None:
        self.path = path
        self._raw = path.open("r+b", buffering=1 << 20)  # created private by the writer
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=1,
                                 mtime=0) if compress else None

    def write(self, data: bytes) -> None:
        (self._gz or self._raw).write(data)

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


def prefetch(open_connection: Callable[[], psycopg.Connection], snapshot: str,
             bins: list[list[Table]], new_part: Callable[[int], Path], compress: bool,
             session: dict[str, str], stream: PartStreamer,
             cancelled: threading.Event) -> dict[str, Future[Part]]:
    """Start one thread per bin; each table's Future resolves to its finished part file.

    `new_part(n)` creates the n-th part file (private, hidden, beside the backup's temp).

    `open_connection` must return an autocommit connection: the transaction is begun here so
    that SET TRANSACTION SNAPSHOT is its first statement.
    """
    futures: dict[str, Future[Part]] = {t.name: Future() for b in bins for t in b}
    counter = iter(range(1_000_000))

    def work(tables: list[Table]) -> None:
        pending = list(tables)
        try:
            with open_connection() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # must come first
                for name, value in session.items():
                    conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                while pending and not cancelled.is_set():
                    table = pending.pop(0)
                    part = PartFile(new_part(next(counter)), compress)
                    try:
                        rows, digest = stream(conn, table, part.write)
                    finally:
                        part.close()
                    futures[table.name].set_result(Part(part.path, rows, digest))
                conn.execute("ROLLBACK")
        except BaseException as exc:  # handed to the main thread through the futures
            for table in [table for table in tables if not futures[table.name].done()]:
                futures[table.name].set_exception(exc)
        for table in pending:  # cancelled: never leave the main thread waiting
            if not futures[table.name].done():
                futures[table.name].set_exception(CancelledError())

    for tables in bins:
        threading.Thread(target=work, args=(tables,), daemon=True,
                         name="backup-stream").start()
    return futures
