"""The server the pool makes its databases on: checked once (reachable, CREATEDB, not
production), then used through short statements that create, comment, clone and drop.

CREATE and DROP DATABASE run outside transactions, from a maintenance database (`postgres`
when reachable, else the database the URL names - never template1, which a connection would
keep every plain CREATE DATABASE on the server from using).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import psycopg
from psycopg import sql

from ops.core.config import Settings, url_with_database
from ops.core.db import connect, first_line, scalar, target_description
from ops.core.errors import OpsError, Refused
from ops.core.guard import production_reasons
from ops.testdb.marks import classify

Strategy = Literal["file_copy", "wal_log"]
MAINTENANCE_DATABASE = "postgres"


@dataclass(frozen=True)
class Admin:
    """Where the pool works: `settings` aim at the maintenance database; `base` are the
    caller's (backups, seeds folder) for the builds."""

    settings: Settings
    base: Settings
    server_version: int  # server_version_num
    strategy: Strategy | None  # None: the server's default (before PostgreSQL 15: no choice)

    def url_for(self, dbname: str) -> str:
        return url_with_database(self.settings.database_url, dbname)

    def settings_for(self, dbname: str) -> Settings:
        """Settings for one pool database: a `test` environment marker for what is pushed."""
        return replace(self.base.with_url(self.url_for(dbname)), app_env="test")

    def connect(self, *, application_name: str | None = None) -> psycopg.Connection:
        conn = connect(self.settings, autocommit=True)
        if application_name:
            conn.execute("SELECT set_config('application_name', %s, false)",
                         (application_name,))
        return conn


def open_admin(settings: Settings, *, strategy: Strategy | None = "file_copy") -> Admin:
    """Check the server before anything is made on it: one line and nothing touched when the
    role may not create databases or the target is production."""
    with connect(settings, autocommit=True) as conn:
        reasons = production_reasons(conn, settings)
        if reasons:
            raise Refused(
                f"refusing to make test databases on the server of a production database "
                f"({'; '.join(reasons)}); nothing was created",
                hint="Point TESTDB_DATABASE_URL (or DATABASE_URL) at a development or CI "
                "server.")
        row = conn.execute("SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles "
                           "WHERE rolname = current_user").fetchone()
        version = conn.info.server_version
    role = row[0] if row else "?"
    if not (row and row[1]):
        raise OpsError(
            f"the role {role} may not create databases (CREATEDB), so there is nowhere to "
            f"make test databases on {target_description(settings.database_url)}",
            hint=f"ALTER ROLE {role} CREATEDB (as an admin), or use a role or server that "
            "has it.")
    maintenance = settings.with_url(url_with_database(settings.database_url,
                                                      MAINTENANCE_DATABASE))
    try:
        connect(maintenance).close()
    except OpsError:
        maintenance = settings  # a managed server may not let this role into `postgres`
    chosen = strategy if version >= 150000 else None
    return Admin(maintenance, settings, version, chosen)


def create_database(conn: psycopg.Connection, admin: Admin, name: str, comment: str, *,
                    template: str = "template0") -> None:
    """CREATE DATABASE `name` from `template`, then mark it. A kill between the two leaves a
    database that only its name marks; `marks.orphans` accounts for those too."""
    query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                              sql.Identifier(template))
    if admin.strategy:
        query += sql.SQL(" STRATEGY {}").format(sql.SQL(admin.strategy.upper()))
    conn.execute(query)
    set_comment(conn, name, comment)


def set_comment(conn: psycopg.Connection, name: str, comment: str) -> None:
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name),
                                                                 sql.Literal(comment)))


def drop_pool_database(conn: psycopg.Connection, admin: Admin, name: str) -> bool:
    """Drop `name` if, read again now, it still carries the pool's marks (closing any session
    on it); False when it is gone or not the pool's."""
    row = conn.execute("SELECT shobj_description(oid, 'pg_database'), datistemplate "
                       "FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if row is None or classify(name, row[0]) is None:
        return False
    if row[1]:
        conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(
            sql.Identifier(name)))
    force = sql.SQL(" WITH (FORCE)") if admin.server_version >= 130000 else sql.SQL("")
    try:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)
    except psycopg.errors.ObjectInUse as exc:  # being cloned right now: try again later
        raise OpsError(f"database {name} is in use: {first_line(exc)}") from None
    return True


def database_size(conn: psycopg.Connection, name: str) -> int:
    size: int = scalar(conn, "SELECT pg_database_size(%s)", (name,))
    return size
