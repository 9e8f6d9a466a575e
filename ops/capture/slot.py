"""The replication slot and publication capture reads through, and the refusals before them.

Everything goes over an ordinary connection and SQL functions (`pg_create_logical_replication_
slot`, `pg_logical_slot_peek_binary_changes`, `pg_replication_slot_advance`): no `replication`
line in pg_hba.conf is needed (the official image has one for loopback only), and a role with
REPLICATION (RDS/Aurora: `rds_replication`; Cloud SQL, Azure: REPLICATION) suffices.

The publication lists the app's tables (FOR ALL TABLES needs a superuser), plus alembic_version:
its row changes mark where a migration committed in the stream (capture ends a segment there).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import errors, sql

from ops.capture.pgoutput import Begin, decode
from ops.core.catalog import APP_SCHEMA, discover_tables
from ops.core.db import first_line, scalar
from ops.core.errors import OpsError

DEFAULT_SLOT = "tasklets_capture"
REVISION_TABLE = "alembic_version"
PROTOCOL = "1"
MARKER_PREFIX = "tasklets-capture"  # the logical messages a cycle reads up to
# A running capture's session is named for its recovery point: `capture status` reads it there.
_COVERED = "tasklets-capture covered "

WAL_LEVEL_HINT = (
    "Set wal_level=logical and restart PostgreSQL: the compose db service does (`make "
    "capture-up`); RDS/Aurora: parameter rds.logical_replication=1; Cloud SQL: flag "
    "cloudsql.logical_decoding=on; Azure Flexible Server: server parameter wal_level=logical.")


class CaptureRefused(OpsError):
    """Capture cannot start on this database as it is; the hint says what to change."""


@dataclass(frozen=True)
class SlotState:
    slot: str
    exists: bool
    active: bool  # a capture process holds the slot's lock
    holder_pid: int | None
    covered_until: datetime | None  # what that capture says it has stored everything before
    reading: bool  # a session holds the slot right now (a stream, or a read over SQL)
    confirmed_lsn: int | None
    retained_wal_bytes: int | None  # WAL the server keeps for the slot (from restart_lsn)
    wal_status: str | None  # reserved | extended | unreserved | lost
    current_lsn: int | None


def configured_slot(given: str | None = None) -> str:
    """--slot, else CAPTURE_SLOT (from the environment or the .env file the settings read),
    else tasklets_capture."""
    return given or os.environ.get("CAPTURE_SLOT") or DEFAULT_SLOT


def lsn_int(text: str | None) -> int | None:
    if text is None:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def peek_options(publication: str) -> sql.Composed:
    return sql.SQL("'proto_version', {}, 'publication_names', {}").format(
        sql.Literal(PROTOCOL), sql.Literal(publication))


def require_logical(conn: psycopg.Connection) -> None:
    level = scalar(conn, "SHOW wal_level")
    if level != "logical":
        raise CaptureRefused(f"the database runs with wal_level={level}; change capture "
                             "needs wal_level=logical", hint=WAL_LEVEL_HINT)


def captured_tables(conn: psycopg.Connection) -> list[str]:
    """The tables to publish (every app table, alembic_version for the revision), refusing a
    table whose UPDATEs and DELETEs would carry no key."""
    names = [t.name for t in discover_tables(conn)]
    if not names:
        raise CaptureRefused("the database has no Tasklets tables to capture",
                             hint="Migrate it first (make db-migrate).")
    rows = conn.execute(
        "SELECT c.relname, c.relreplident, EXISTS (SELECT 1 FROM pg_index i "
        " WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) ORDER BY c.relname",
        (APP_SCHEMA, names)).fetchall()
    keyless = [name for name, ident, has_pk in rows
               if ident == "n" or (ident == "d" and not has_pk)]
    if keyless:
        first = keyless[0]
        raise CaptureRefused(
            f"table {', '.join(keyless)} has no primary key or replica identity: its updates "
            "and deletes could not be replayed",
            hint=f"Add a primary key in a migration, or ALTER TABLE {first} REPLICA IDENTITY "
            "FULL (every column then identifies the row).")
    has_revision = scalar(conn, "SELECT to_regclass(%s) IS NOT NULL",
                          (f"{APP_SCHEMA}.{REVISION_TABLE}",))
    return sorted(names) + ([REVISION_TABLE] if has_revision else [])


def ensure_publication(conn: psycopg.Connection, name: str, tables: list[str]) -> None:
    """Create the publication, or make its table list exactly `tables` (a migration may have
    added some)."""
    listed = sql.SQL(", ").join(sql.Identifier(APP_SCHEMA, t) for t in tables)
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                          (name,)).fetchone()
    statement = (sql.SQL("ALTER PUBLICATION {} SET TABLE {}") if exists
                 else sql.SQL("CREATE PUBLICATION {} FOR TABLE {}"))
    try:
        with conn.transaction():
            conn.execute(statement.format(sql.Identifier(name), listed))
    except errors.InsufficientPrivilege as exc:
        raise CaptureRefused(
            f"cannot create the publication {name}: {first_line(exc)}",
            hint="Run capture as the role that owns the app's tables, with CREATE on the "
            "database (GRANT CREATE ON DATABASE ... TO ...).") from None


def ensure_slot(conn: psycopg.Connection, name: str) -> bool:
    """Create the logical slot (pgoutput) unless it exists; True when created now."""
    row = conn.execute("SELECT plugin, database = current_database() "
                       "FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchone()
    if row is not None:
        plugin, here = row
        if plugin != "pgoutput" or not here:
            raise CaptureRefused(
                f"replication slot {name} exists but is not a pgoutput slot of this database",
                hint="Choose another slot name (--slot / CAPTURE_SLOT).")
        return False
    try:
        with conn.transaction():
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
    except errors.InsufficientPrivilege as exc:
        raise missing_replication(exc) from None
    except errors.DuplicateObject:  # created meanwhile by another capture: the lock decides
        return False
    except errors.ObjectNotInPrerequisiteState as exc:
        raise CaptureRefused(f"cannot create replication slot {name}: {first_line(exc)}",
                             hint=WAL_LEVEL_HINT) from None
    return True


def missing_replication(exc: BaseException) -> CaptureRefused:
    return CaptureRefused(
        f"the database role may not read changes: {first_line(exc)}",
        hint="Grant it REPLICATION (ALTER ROLE ... WITH REPLICATION); on RDS/Aurora: GRANT "
        "rds_replication TO ...; on Cloud SQL: ALTER USER ... WITH REPLICATION.")


def drop(conn: psycopg.Connection, slot: str, publication: str) -> list[str]:
    """Drop the slot and the publication; what was dropped."""
    dropped = []
    if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                    (slot,)).fetchone():
        try:
            with conn.transaction():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        except errors.ObjectInUse:
            raise OpsError(f"replication slot {slot} is in use by a running capture",
                           hint="Stop the capture service first (make capture-down).") from None
        dropped.append(f"slot {slot}")
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                    (publication,)).fetchone():
        with conn.transaction():
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
        dropped.append(f"publication {publication}")
    return dropped


# --- one capture per slot ---------------------------------------------------------------


def lock_key(slot: str) -> int:
    """The advisory lock a capture holds for its slot's lifetime (a stable signed 64-bit)."""
    return int.from_bytes(hashlib.sha256(f"tasklets-capture:{slot}".encode()).digest()[:8],
                          "big", signed=True)


def take_lock(conn: psycopg.Connection, slot: str) -> None:
    """Hold the slot's lock on this session; refuse when another capture holds it."""
    if scalar(conn, "SELECT pg_try_advisory_lock(%s)", (lock_key(slot),)):
        return
    pid = lock_holder(conn, slot)
    raise CaptureRefused(
        f"another capture is running on slot {slot}"
        + (f" (database session {pid})" if pid else ""),
        hint="Run one capture per slot: stop the other (make capture-down), or give this one "
        "its own slot (--slot).")


def release_lock(conn: psycopg.Connection, slot: str) -> None:
    """Let the slot's lock go now: the server drops a closed session's locks only when its
    backend has exited, a moment after the client closed, and a capture started in that
    moment (a restart, `--once` in a loop) would be refused."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(slot),))


def lock_holder(conn: psycopg.Connection, slot: str) -> int | None:
    key = lock_key(slot) & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
        (key >> 32, key & 0xFFFFFFFF)).fetchone()
    return row[0] if row else None


# --- what status shows --------------------------------------------------------------------


def slot_state(conn: psycopg.Connection, slot: str) -> SlotState:
    current = scalar(conn, "SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
                     "ELSE pg_current_wal_lsn()::text END")
    row = conn.execute(
        "SELECT active, confirmed_flush_lsn::text, "
        " CASE WHEN pg_is_in_recovery() THEN NULL "
        " ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END, wal_status "
        "FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    if row is None:
        return SlotState(slot, False, False, None, None, False, None, None, None,
                         lsn_int(current))
    holder = lock_holder(conn, slot)
    covered = None
    if holder is not None:
        name = conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                            (holder,)).fetchone()
        covered = covered_from_name(name[0] if name else None)
    reading, confirmed, retained, wal_status = row
    return SlotState(slot, True, holder is not None, holder, covered, reading,
                     lsn_int(confirmed), retained, wal_status, lsn_int(current))


def covered_name(moment: datetime) -> str:
    """The application_name a capture's session carries: `tasklets-capture covered <UTC>`."""
    return _COVERED + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def covered_from_name(name: str | None) -> datetime | None:
    if not name or not name.startswith(_COVERED):
        return None
    try:
        return datetime.strptime(name[len(_COVERED):], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC)
    except ValueError:
        return None


def oldest_pending_commit(conn: psycopg.Connection, slot: str, publication: str, *,
                          attempts: int = 20) -> Begin | None:
    """The first transaction the slot holds that capture has not stored (None: caught up).

    Its Begin message carries its commit time: the lag is how long ago that was. A running
    capture holds the slot while it reads; this waits for it between its reads."""
    query = sql.SQL("SELECT data FROM pg_logical_slot_peek_binary_changes({}, NULL, 1, {}) "
                    "LIMIT 1").format(sql.Literal(slot), peek_options(publication))
    for attempt in range(attempts):
        try:
            with conn.transaction():
                row = conn.execute(query).fetchone()
        except errors.ObjectInUse:
            time.sleep(min(0.05 * (attempt + 1), 0.5))
            continue
        except errors.InsufficientPrivilege as exc:
            raise missing_replication(exc) from None
        if row is None:
            return None
        message = decode(row[0])
        return message if isinstance(message, Begin) else None
    raise OpsError(f"replication slot {slot} stayed busy; cannot tell the capture lag",
                   hint="Try again; a capture reading a large backlog holds the slot.")

