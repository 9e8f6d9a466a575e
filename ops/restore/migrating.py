"""Restoring a backup made at an older schema revision: rebuild, load, migrate - all inside
the restore's one transaction (ops.restore.apply).

When the backup's revision R is an ancestor of the database's, and the database is at head,
the restore hands its transaction to a SchemaSwap:

- `rebuild`, after the safety backup: drop the app's tables and enum types, and let the
  migrations build the schema at R on the same connection (`alembic upgrade R`). The tool's
  own tables go and come back with it - `alembic_version` is rebuilt by Alembic, and the
  environment marker (`ops_metadata`) gets its rows back, so a production database stays
  marked production. Tables keep their owner (the DDL runs as the role that owned them) and
  their grants to other roles.
- the rows are then loaded into the schema at R like any restore's, and foreign keys checked;
- `migrate`: `alembic upgrade head`, so data migrations run on the restored rows.

PostgreSQL's DDL is transactional: any failure - a row the schema at R refuses, a migration
the data breaks, kill -9 - rolls back to exactly the schema and data there were before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ops.core.catalog import (
    APP_SCHEMA,
    EXCLUDED_TABLES,
    OPS_METADATA_TABLE,
    Table,
    discover_tables,
    lock_tables,
)
from ops.core.config import Settings
from ops.core.db import first_line, scalar
from ops.core.errors import OpsError, Refused
from ops.core.output import Reporter, suggest_flag
from ops.schema.migrate import (
    known_revisions,
    schema_at,
    upgrade_in_transaction,
    upgrade_path,
)


def _not_migrated_hint() -> str:
    return ("Or load the columns both revisions have into the current schema instead: "
            f"{suggest_flag('--allow-schema-mismatch')}.")


@dataclass
class SchemaSwap:
    """How a backup at an older revision is restored: the schema at `source`, then the
    migrations to `target`."""

    settings: Settings
    source: str
    target: str
    steps: list[str]  # "rev: message" of each migration run after the load, oldest first
    tables: list[Table]  # the app tables at `source`, as the migrations build them
    _kept: _Kept | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return " → ".join([self.source, *(step.split(":")[0] for step in self.steps)])

    def rebuild(self, conn: psycopg.Connection, tables: list[Table],
                report: Reporter) -> list[Table]:
        """Replace the app's (locked) `tables` and their enum types with the schema at
        `source`; returns its tables."""
        self._kept = kept = _keep(conn, tables)
        own = [Table(name, (), ()) for name in sorted(EXCLUDED_TABLES)]
        lock_tables(conn, own, "ACCESS EXCLUSIVE", what="restore failed")
        try:
            with kept.as_owner(conn):
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(
                    t.ident for t in [*tables, *own])))
                if kept.types:
                    conn.execute(sql.SQL("DROP TYPE {}").format(sql.SQL(", ").join(
                        sql.Identifier(APP_SCHEMA, name) for name in kept.types)))
                _run_migrations(conn, self.settings, self.source,
                                f"building the schema at {self.source} failed")
                kept.restore_marker(conn)
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise OpsError(
                f"other objects depend on the app's tables ({first_line(exc)}), and restoring "
                f"a backup made at {self.source} rebuilds them; nothing was changed",
                hint="Drop those objects (views, foreign keys from other tables) first. "
                + _not_migrated_hint()) from None
        rebuilt = discover_tables(conn)
        report.line(f"🏗️  Schema rebuilt at {self.source} from the migrations "
                    f"({len(rebuilt)} tables)")
        return rebuilt

    def migrate(self, conn: psycopg.Connection, report: Reporter) -> list[Table]:
        """Run the migrations from `source` to `target` on the loaded rows; returns the
        tables at `target`."""
        assert self._kept is not None, "rebuild first"
        report.line(f"📜 Migrating the restored data {self.path}...")
        with self._kept.as_owner(conn):
            _run_migrations(conn, self.settings, self.target,
                            f"the backup's data cannot be migrated {self.path}")
            self._kept.regrant(conn)
        for step in self.steps:
            report.line(f"✅ Applied {step}")
        return discover_tables(conn)


def older_revision_swap(conn: psycopg.Connection, settings: Settings, revision: str | None,
                        database: str | None, tables: list[Table], *,
                        allow_schema_mismatch: bool, only_listed_tables: bool,
                        dry_run: bool, report: Reporter) -> SchemaSwap | None:
    """The swap that restores a backup made at `revision` into a database at `database`, or
    None when the usual restore applies (same revision, none recorded, mismatch allowed, or
    a mismatch the usual checks refuse). A revision the migrations do not know is refused."""
    if revision is None or revision == database or allow_schema_mismatch:
        return None
    known = known_revisions(settings)
    if revision not in known:
        raise OpsError(
            f"the backup was made at schema revision {revision}, which this tasklets-ops does "
            f"not know (the database is at {database or 'no revision'}, the newest revision "
            f"here is {known[-1] if known else 'none'}): a newer release wrote it, upgrade "
            "tasklets-ops to restore it; nothing was changed",
            hint=f"Install a release whose migrations include {revision}, then restore again.")
    steps = upgrade_path(settings, revision, database) if database == known[-1] else None
    if steps is None or database is None:
        return None  # a newer backup, or a database behind head: the usual mismatch error
    if only_listed_tables:
        raise Refused(
            f"--only-listed-tables: the backup was made at {revision} and the database is at "
            f"{database}; restoring it rebuilds every table, so none can be left untouched; "
            "nothing was changed",
            hint="Restore a full backup made at that revision, or pass "
            "--allow-schema-mismatch to load the listed tables' common columns.")
    _refuse_foreign_tables(tables)
    swap = SchemaSwap(settings, revision, database, steps, schema_at(conn, settings, revision))
    if dry_run:
        report.line(f"📜 Backup at {revision}, database at {database}: would restore at "
                    f"{revision}, then migrate {swap.path}")
    else:
        report.line(f"📜 Backup at {revision}, database at {database}: restoring at "
                    f"{revision}, then migrating {swap.path}")
    return swap


def _refuse_foreign_tables(tables: list[Table]) -> None:
    """Tables the migrations do not create would be dropped and never come back."""
    from ops.schema.models import metadata

    foreign = sorted(t.name for t in tables if t.name not in metadata.tables)
    if foreign:
        raise OpsError(
            f"the database holds tables the migrations do not create ({', '.join(foreign)}): "
            "restoring a backup made at an older revision rebuilds the schema from the "
            "migrations and would lose them; nothing was changed",
            hint="Move those tables to another schema first. " + _not_migrated_hint())


def _run_migrations(conn: psycopg.Connection, settings: Settings, revision: str,
                    failed: str) -> None:
    from sqlalchemy.exc import DBAPIError

    try:
        upgrade_in_transaction(conn, settings, revision)
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.OperationalError):
            raise exc.orig from None  # the connection is gone: the restore says so
        raise OpsError(f"{failed}: {first_line(exc.orig or exc)}; nothing was changed",
                       hint="Fix that row in the backup (or restore another one). "
                       + _not_migrated_hint()) from None


# ---------------------------------------------------------------- what survives the rebuild

_OWNERS_SQL = """
SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
WHERE c.oid = ANY(%(oids)s::regclass[])
"""
# Privileges granted to roles other than the owner (PUBLIC is grantee 0).
_GRANTS_SQL = """
SELECT c.relname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = ANY(%(oids)s::regclass[]) AND a.grantee <> c.relowner
ORDER BY 1, 2, 3
"""
_ENUMS_SQL = """
SELECT DISTINCT t.typname FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid OR t.typarray = a.atttypid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE a.attrelid = ANY(%(oids)s::regclass[]) AND a.attnum > 0 AND t.typtype = 'e'
  AND n.nspname = %(schema)s
ORDER BY 1
"""


@dataclass
class _Kept:
    """What the rebuild must not lose: the tables' owner and grants, the marker's rows."""

    owner: str | None  # the tables' one owner, when it is not the restoring role
    grants: list[tuple[str, str, str, bool]]  # (table, grantee, privilege, grantable)
    types: list[str]  # the app's enum types
    marker_columns: list[str]
    marker_rows: list[tuple[Any, ...]]

    @contextmanager
    def as_owner(self, conn: psycopg.Connection) -> Iterator[None]:
        """Run DDL as the tables' owner, so what it creates belongs to that role too."""
        if self.owner is None:
            yield
            return
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.owner)))
        yield
        conn.execute("RESET ROLE")

    def restore_marker(self, conn: psycopg.Connection) -> None:
        if not self.marker_rows:
            return
        present = {c for (c,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped", (f"{APP_SCHEMA}.{OPS_METADATA_TABLE}",))}
        keep = [i for i, c in enumerate(self.marker_columns) if c in present]
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(APP_SCHEMA, OPS_METADATA_TABLE),
            sql.SQL(", ").join(sql.Identifier(self.marker_columns[i]) for i in keep),
            sql.SQL(", ").join(sql.Placeholder() * len(keep)))
        with conn.cursor() as cur:
            cur.executemany(statement, [[row[i] for i in keep] for row in self.marker_rows])

    def regrant(self, conn: psycopg.Connection) -> None:
        """Grant again what was granted on the tables that still exist."""
        present = {t.name for t in discover_tables(conn)}
        for table, grantee, privilege, grantable in self.grants:
            if table not in present:
                continue
            conn.execute(sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege), sql.Identifier(APP_SCHEMA, table),
                sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")))


def _keep(conn: psycopg.Connection, tables: list[Table]) -> _Kept:
    quoted = [sql.Identifier(APP_SCHEMA, t.name).as_string(conn) for t in tables]
    owners = [o for (o,) in conn.execute(_OWNERS_SQL, {"oids": quoted})]
    me = scalar(conn, "SELECT current_user")
    owner = owners[0] if len(owners) == 1 and owners[0] != me else None
    grants = [tuple(row) for row in conn.execute(_GRANTS_SQL, {"oids": quoted})]
    types = [t for (t,) in conn.execute(_ENUMS_SQL, {"oids": quoted, "schema": APP_SCHEMA})]
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []
    if scalar(conn, "SELECT to_regclass(%s) IS NOT NULL",
              (f"{APP_SCHEMA}.{OPS_METADATA_TABLE}",)):
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM {}").format(
                sql.Identifier(APP_SCHEMA, OPS_METADATA_TABLE)))
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchall()
    return _Kept(owner, grants, types, columns, rows)
