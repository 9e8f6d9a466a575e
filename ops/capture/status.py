"""`capture status` and the capture-lag check: what the slot holds back, and how old the oldest
change not yet stored is.

The lag is read on the database. With no capture running, the first transaction the slot still
holds carries its commit time (pgoutput's Begin): a capture that died shows a growing lag even
though it reports nothing. A running capture holds its slot (a replication stream lets nobody
else read it) and names its session for the moment before which it has stored every change; a
capture that hangs, or cannot reach its store, stops moving that moment.
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
    lag_seconds: float | None  # None: no slot, or a capture that has not read yet
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
    now = now or datetime.now(UTC)
    if state.exists and state.covered_until is not None:
        status.lag_seconds = round(max(0.0, (now - state.covered_until).total_seconds()), 3)
    elif state.exists and not (state.active and state.reading):  # else: a capture starting
        begin = oldest_pending_commit(conn, slot, publication)
        status.lag_seconds = 0.0 if begin is None else round(
            max(0.0, (now - begin.commit_time).total_seconds()), 3)
        status.oldest_pending_commit = begin.commit_time.isoformat() if begin else None
    if archive is not None:
        stored = archive.segments()
        status.segments = len(stored)
        if stored:
            newest = segment_facts(archive, stored[-1])
            status.last_segment = newest.name
            until = newest.complete_until or newest.last_commit
            status.last_flush = until.isoformat() if until else None
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
    if status.lag_seconds is None:
        return LagCheck(True, max_lag, None, "capture lag not known yet (capture is starting)")
    lag = status.lag_seconds
    ok = lag <= limit
    line = (f"capture lag {lag:.1f}s (limit {max_lag})" if ok
            else f"capture lag is {lag:.1f}s (limit {max_lag})"
            + ("" if status.running else "; no capture is running"))
    return LagCheck(ok, max_lag, lag, line)

