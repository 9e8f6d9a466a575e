"""The backup lock: one backup of a database at a time, whoever starts it.

A PostgreSQL session-level advisory lock, held on a connection of its own for as long as the
backup runs: a second `backup` (manual, cron's or a scheduler's) sees it and waits or steps
aside, and saying which. The server releases it when the holder's connection ends, so a
killed run never leaves it behind. The key is per database (advisory locks are), so backups
of two databases on one server never wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from ops.core.config import Settings
from ops.core.db import connection, scalar
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter

# hashtextextended('tasklets-backup', 0) would do as well; a constant reads better in pg_locks
BACKUP_LOCK_KEY = 0x7461736B_6C657473  # "taskleTS" in ASCII, as one bigint


class BackupRunning(OpsError):
    """Another backup of this database holds the lock (and we were told not to wait)."""


@contextmanager
def backup_lock(settings: Settings, *, wait: bool = True,
                report: Reporter = SILENT) -> Iterator[None]:
    """Hold the database's backup lock while the block runs.

    Free: taken at once. Held by another run: with `wait`, say so and wait for it; without,
    raise BackupRunning naming the holder (nothing was done).
    """
    with connection(settings, autocommit=True) as conn:
        if not _try_lock(conn):
            holder = _holder(conn)
            if not wait:
                raise BackupRunning(f"another backup of this database is running ({holder})")
            report.line(f"⏳ Another backup of this database is running ({holder}); waiting "
                        "for it to finish...")
            conn.execute("SELECT pg_advisory_lock(%s)", (BACKUP_LOCK_KEY,))
        yield  # closing the connection releases the lock, whatever happened inside


def _try_lock(conn: psycopg.Connection) -> bool:
    return bool(scalar(conn, "SELECT pg_try_advisory_lock(%s)", (BACKUP_LOCK_KEY,)))


def _holder(conn: psycopg.Connection) -> str:
    """Which session holds the lock, for the message (a pid and what it calls itself)."""
    row = conn.execute(
        "SELECT a.pid, coalesce(nullif(a.application_name, ''), 'unknown client') "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND (l.classid::bigint << 32) | l.objid::bigint = %s", (BACKUP_LOCK_KEY,)).fetchone()
    return f"server pid {row[0]}, {row[1]}" if row else "it just finished"
