"""`capture status` and the capture-lag check: what the slot holds back, and how old the oldest
change not yet stored is.

The lag is measured on the database, not taken from the service: the first transaction the
slot still holds carries its commit time (pgoutput's Begin), so a capture that died, hangs, or
cannot reach its store shows a growing lag even though it reports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from ops.backup.archive import Archive
from ops.backup.prune import parse_age
from ops.backup.segment_files import lsn_text
from ops.capture.segments import segment_facts
from ops.capture.slot import oldest_pending_commit, slot_state


@dataclass
class CaptureStatus:
    slot: str
    exists: bool
    running: bool  # a capture process holds the slot's lock
    pid: int | None  # its database session
    confirmed_lsn: str | None
    retained_wal_bytes: int | None
    wal_status: str | None
    lag_seconds: float | None  # None: no slot
    oldest_pending_commit: str | None  # ISO; None when caught up
    segments: int = 0
    last_flush: str | None = None  # up to when the newest segment holds every change (ISO)
    last_segment: str | None = None


def capture_status(conn: psycopg.Connection, archive: Archive | None, slot: str,
                   publication: str, *, now: datetime | None = None) -> CaptureStatus:
    state = slot_state(conn, slot)
    status = CaptureStatus(slot, state.exists, state.active, state.holder_pid,
                           lsn_text(state.confirmed_lsn) if state.confirmed_lsn is not None
                           else None, state.retained_wal_bytes, state.wal_status, None, None)
    if state.exists:
        begin = oldest_pending_commit(conn, slot, publication)
        now = now or datetime.now(UTC)
        status.lag_seconds = 0.0 if begin is None else round(
            max(0.0, (now - begin.commit_time).total_seconds()), 3)
        status.oldest_pending_commit = begin.commit_time.isoformat() if begin else None
    if archive is not None:
        stored = archive.segments()
        status.segments = len(stored)
        if stored:
            newest = segment_facts(archive, stored[-1])
            status.last_segment = newest.name
            status.last_flush = (newest.complete_until or newest.last_commit).isoformat() \
                if (newest.complete_until or newest.last_commit) else None
    return status


@dataclass
class LagCheck:
    ok: bool
    max_lag: str
    lag_seconds: float | None
    line: str


def check_capture_lag(status: CaptureStatus, max_lag: str) -> LagCheck:
    """Whether the oldest change capture has not stored is younger than `max_lag` (90s, 5m);
    no slot at all fails too (nothing is being captured)."""
    limit = parse_age(max_lag).total_seconds()
    if not status.exists:
        return LagCheck(False, max_lag, None, f"no replication slot {status.slot}: changes "
                        "are not being captured")
    lag = status.lag_seconds or 0.0
    ok = lag <= limit
    line = (f"capture lag {lag:.1f}s (limit {max_lag})" if ok
            else f"capture lag is {lag:.1f}s (limit {max_lag})"
            + ("" if status.running else "; no capture is running"))
    return LagCheck(ok, max_lag, lag, line)

