"""Connections: the one place that opens a database connection and explains failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.output import suggest

CONNECT_TIMEOUT_SECONDS = 10


def target_description(url: str) -> str:
    """host:port/database of a URL, never its credentials."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<invalid DATABASE_URL>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection, turning every connection failure into one OpsError line."""
    url = settings.database_url
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # libpq's message quotes the part it could not parse, which may be the password.
        raise OpsError(
            "DATABASE_URL is not a valid PostgreSQL connection string",
            hint="Use postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special "
            "characters in the password).",
        ) from None
    try:
        conn = psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="tasklets-db",
        )
    except psycopg.OperationalError as exc:
        raise OpsError(
            f"cannot connect to database {target_description(url)}: {first_line(exc)}",
            hint=f"Is PostgreSQL running and DATABASE_URL right? {suggest('status')} "
            "shows the target.",
        ) from None
    # Stable text output for everything we serialise (timestamps in UTC, ISO dates).
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    conn.execute("SET IntervalStyle = 'iso_8601'")
    conn.execute("SET extra_float_digits = 3")
    if not autocommit:
        conn.commit()
    return conn


@contextmanager
def connection(settings: Settings, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    conn = connect(settings, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def first_line(exc: BaseException) -> str:
    """The first meaningful line of a driver error (libpq messages span several)."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("connection to server at", "DETAIL", "HINT")):
            return line.removeprefix("FATAL:  ").removeprefix("ERROR:  ")
    return text.splitlines()[0] if text else exc.__class__.__name__


def is_superuser(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def server_version(conn: psycopg.Connection) -> str:
    return conn.execute("SHOW server_version").fetchone()[0]
