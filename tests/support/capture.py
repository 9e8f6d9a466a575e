"""Helpers for the change-capture tests: a slot per test (dropped after), reading back every
stored change."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg

from ops.backup.archive import Archive
from ops.capture.segments import Transaction, read_segment
from ops.capture.service import Capture, CaptureOptions
from ops.core.config import Settings
from ops.core.output import SILENT

_NUMBERS = itertools.count()


def slot_name() -> str:
    """A slot name no other test (nor another test process) uses: slots are per server."""
    return f"capture_test_{os.getpid()}_{next(_NUMBERS)}"


def drop_slot(url: str, slot: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(50):
            row = conn.execute("SELECT active_pid FROM pg_replication_slots "
                               "WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                break
            if row[0] is None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            conn.execute("SELECT pg_sleep(0.1)")
        conn.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')


def drain(settings: Settings, slot: str, **options: object) -> Capture:
    """Run capture once (until caught up) on `slot`; the Capture, for its progress."""
    report = options.pop("report", SILENT)
    capture = Capture(settings, Archive.from_settings(settings),
                      CaptureOptions(slot=slot, once=True, **options),  # type: ignore[arg-type]
                      report=report)  # type: ignore[arg-type]
    capture.open()
    capture.run()
    return capture


def stored_transactions(archive: Archive, *, dedupe: bool = True) -> list[Transaction]:
    """Every stored transaction, segments in LSN order; a transaction stored twice once."""
    infos = sorted(archive.segments(), key=lambda info: (info.start_lsn, info.end_lsn))
    seen: set[tuple[int, int]] = set()
    found = []
    for info in infos:
        for tx in read_segment(archive, info):
            if dedupe and (tx.xid, tx.lsn) in seen:
                continue
            seen.add((tx.xid, tx.lsn))
            found.append(tx)
    return found


def segment_ranges(archive: Archive) -> list[tuple[int, int]]:
    return sorted((info.start_lsn, info.end_lsn) for info in archive.segments())


def changes_of(transactions: list[Transaction], table: str) -> Iterator[tuple[str, dict]]:
    for tx in transactions:
        for change in tx.changes:
            if change.table == table:
                yield change.op, {"row": change.row, "key": change.key,
                                  "unchanged": change.unchanged}
