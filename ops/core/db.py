"""Connections: the one place that opens a database connection and explains failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict

from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.output import quiet_library_logs, run_mode, via_make

if TYPE_CHECKING:
    from sqlalchemy import Engine

quiet_library_logs("psycopg")

CONNECT_TIMEOUT_SECONDS = 10

# Everything the text PostgreSQL gives us depends on, for every connection: timestamps in UTC,
# ISO dates and intervals, floats that read back exactly.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "extra_float_digits": "3",  # shortest text that reads back to the same float
}
# What row_to_json's text in a backup depends on besides (bytea and money output, encoding),
# pinned for one snapshot's transaction, on connections that may have been opened elsewhere
# (a restore's, a parallel stream's), so every backup reads alike.
SNAPSHOT_SETTINGS = {
    **SESSION_SETTINGS,
    "bytea_output": "hex",
    "lc_monetary": "C",
    "client_encoding": "UTF8",
    "statement_timeout": "0",  # a big table must not hit a server-wide timeout
}


def pin_settings(conn: psycopg.Connection, settings: dict[str, str] = SESSION_SETTINGS, *,
                 local: bool = False) -> None:
    """Set `settings` on the connection (`local`: for the current transaction only), in one
    round trip: the one place session settings are set."""
    calls = sql.SQL(", ").join(sql.SQL("set_config({}, {}, {})").format(
        sql.Literal(name), sql.Literal(value), sql.Literal(local))
        for name, value in settings.items())
    conn.execute(sql.SQL("SELECT {}").format(calls))


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
            hint=connect_hint(exc)) from None
    pin_settings(conn)
    if not autocommit:
        conn.commit()
    return conn


# libpq's words for a server that answered but refused who we are (SQLSTATE 28000/28P01,
# 3D000; libpq gives connection failures no SQLSTATE, so the text is what there is).
_AUTH_FAILED = ("password authentication failed", "no password supplied", "role ",
                "authentication failed", "no pg_hba.conf entry")
_NO_DATABASE = ("database ", "does not exist")


def connect_hint(exc: psycopg.OperationalError) -> str:
    """What to check for a failed connection: the credentials when the server refused them,
    else whether the server is up and where the settings point."""
    text = str(exc)
    local = run_mode() == "local"
    if any(words in text for words in _AUTH_FAILED) and "does not exist" not in text:
        if local:
            return ("Check the password: LOCALPG_PASSWORD in .env is the project-local "
                    "PostgreSQL's (or the one in DATABASE_URL, when that is set).")
        return ("Check the user and password: POSTGRES_USER/POSTGRES_PASSWORD in .env, or the "
                "ones in DATABASE_URL. The compose db keeps the password it was first started "
                "with: put that one back in .env, or recreate the db with "
                "`make down ARGS=-v` (deletes its data).")
    if all(words in text for words in _NO_DATABASE):
        return ("Check the user and database name: POSTGRES_USER/POSTGRES_DB in .env, or the "
                "ones in DATABASE_URL.")
    if local:
        return ("Is the project-local PostgreSQL up? `make up RUN=local` starts it (its log: "
                ".localpg/server.log); or set DATABASE_URL in .env to your own server.")
    if via_make():
        return ("Is the database up? `make up` starts the compose db (`make logs ARGS=db` "
                "shows why it is not); with your own server, check DATABASE_URL in .env.")
    return ("Is the database up (the compose db: `make up`)? Then check where this points: "
            "DATABASE_URL in .env, or when that is empty POSTGRES_HOST/POSTGRES_PORT (the "
            "compose db as published on this machine).")


def sqlalchemy_engine(settings: Settings) -> Engine:
    """A SQLAlchemy engine (Alembic's) whose every connection comes from `connect`: the
    database the settings name, in whatever DSN form, never one rebuilt as a SQLAlchemy URL
    (a key=value DSN has no URL form, and libpq would fill what it lost from PG* variables)."""
    from sqlalchemy import create_engine, pool  # here: SQLAlchemy is slow to import

    return create_engine("postgresql+psycopg://", creator=lambda: connect(settings),
                         poolclass=pool.NullPool)


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


def scalar(conn: psycopg.Connection, query: str | sql.SQL | sql.Composed,
           params: Params | None = None) -> Any:
    """The first value of the first row: for the queries that always return one row (SHOW,
    aggregates, function calls)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise OpsError("The server returned no row where one was expected.")
    return row[0]


def is_superuser(conn: psycopg.Connection) -> bool:
    return bool(scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))


def server_version(conn: psycopg.Connection) -> str:
    return str(scalar(conn, "SHOW server_version"))


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a connection reached, as the server says it: a URL's text cannot tell
    (`localhost` and `127.0.0.1`, a DNS alias, a pooler in front all name the same one)."""

    system_identifier: str | None  # the cluster's, from pg_control_system(); None if hidden
    database_oid: int
    database: str

    def same_database(self, other: DatabaseIdentity) -> bool:
        """Whether both name one database. Without a system identifier (a managed server that
        hides it) only the name and oid are compared: two clusters rarely share both, and
        where they might, callers err towards "same" (refusing) rather than "different"."""
        if self.system_identifier and other.system_identifier \
                and self.system_identifier != other.system_identifier:
            return False
        return self.database_oid == other.database_oid and self.database == other.database

    def as_meta(self) -> dict[str, object]:
        return {"systemIdentifier": self.system_identifier, "databaseOid": self.database_oid,
                "database": self.database}

    @classmethod
    def from_meta(cls, value: object) -> DatabaseIdentity | None:
        """The identity a backup's meta recorded; None when absent or malformed."""
        if not isinstance(value, dict):
            return None
        oid, name, system = value.get("databaseOid"), value.get("database"), \
            value.get("systemIdentifier")
        if not isinstance(oid, int) or not isinstance(name, str) \
                or not isinstance(system, str | None):
            return None
        return cls(system, oid, name)


def database_identity(conn: psycopg.Connection) -> DatabaseIdentity:
    """The server's own identification of the connected database (cluster + oid + name)."""
    found = conn.execute("SELECT d.datname, d.oid::bigint FROM pg_database d "
                         "WHERE d.datname = current_database()").fetchone()
    if found is None:
        raise OpsError("The server did not list the database it is connected to.")
    name, oid = found
    system: str | None = None
    try:  # executable by anyone on stock PostgreSQL; a managed service may revoke it
        with conn.transaction():
            row = conn.execute(
                "SELECT system_identifier::text FROM pg_control_system()").fetchone()
            system = row[0] if row else None
    except psycopg.Error:
        system = None
    return DatabaseIdentity(system, oid, name)


def identity_of(settings: Settings) -> DatabaseIdentity:
    """The identity of the database `settings` names (one short connection)."""
    with connection(settings, autocommit=True) as conn:
        return database_identity(conn)
