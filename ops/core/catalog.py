"""Table discovery from the live database: one place, used by backup, restore, reset, status.

Never a hard-coded list: whatever tables the app schema holds (minus Alembic's and the tool's
own bookkeeping) are the tables, ordered so that referenced tables come before referencing ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ops.core.db import scalar
from ops.core.errors import OpsError
from ops.core.output import suggest

APP_SCHEMA = "public"
# Tool bookkeeping (like Rails' ar_internal_metadata): never backed up, reset or restored.
OPS_METADATA_TABLE = "ops_metadata"
EXCLUDED_TABLES = frozenset({"alembic_version", OPS_METADATA_TABLE})


_JSON_TYPES = frozenset({"json", "jsonb"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), e.g. "numeric(10,2)", "text[]", "work_status"
    nullable: bool
    generated: bool  # GENERATED ALWAYS AS (...) STORED: never written by a restore
    identity: str  # "" | "a" (ALWAYS) | "d" (BY DEFAULT)
    has_default: bool

    @property
    def is_array(self) -> bool:
        return self.type.endswith("[]")

    @property
    def json_type(self) -> str | None:
        """"json" or "jsonb" for such columns and arrays of them; None otherwise."""
        base = self.type.removesuffix("[]").removesuffix("[]")
        return base if base in _JSON_TYPES else None


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    deferrable: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = field(default=())
    # Column sets of the unique constraints and plain-column unique indexes (not the primary
    # key; partial and expression indexes are left out): what a copied row may collide on.
    unique_keys: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(APP_SCHEMA, self.name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def writable_columns(self) -> list[Column]:
        return [c for c in self.columns if not c.generated]



_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       a.attgenerated <> '', a.attidentity, a.atthasdef
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS_SQL = """
SELECT c.relname, con.conname, con.contype,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
       rc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i),
       con.condeferrable
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
WHERE n.nspname = %(schema)s AND con.contype IN ('p', 'f')
ORDER BY c.relname, con.conname
"""

# Every unique index: (table, index, its plain columns, whether it is the primary key, whether
# it is partial or has expression parts); an expression's part is left out of the columns.
_UNIQUE_SQL = """
SELECT c.relname, i.relname,
       ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
             WHERE k.o <= x.indnkeyatts ORDER BY k.o),
       x.indisprimary, x.indpred IS NOT NULL OR x.indexprs IS NOT NULL
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND x.indisunique
ORDER BY c.relname, i.relname
"""


def discover_tables(conn: psycopg.Connection, schema: str = APP_SCHEMA) -> list[Table]:
    """Every app table, in foreign-key dependency order (then by name)."""
    columns: dict[str, list[Column]] = {}
    for table, name, typ, nullable, generated, identity, has_default in conn.execute(
        _COLUMNS_SQL, {"schema": schema}
    ):
        if table in EXCLUDED_TABLES:
            continue
        columns.setdefault(table, []).append(
            Column(name, typ, nullable, generated, identity, has_default)
        )
    pks: dict[str, tuple[str, ...]] = {}
    fks: dict[str, list[ForeignKey]] = {}
    for table, name, kind, cols, ref_table, ref_cols, deferrable in conn.execute(
        _CONSTRAINTS_SQL, {"schema": schema}
    ):
        if table not in columns:
            continue
        if kind == "p":
            pks[table] = tuple(cols)
        else:
            fks.setdefault(table, []).append(
                ForeignKey(name, tuple(cols), ref_table, tuple(ref_cols), deferrable)
            )
    uniques: dict[str, list[tuple[str, ...]]] = {}
    for table, _, cols, primary, partial in conn.execute(_UNIQUE_SQL, {"schema": schema}):
        if table in columns and not primary and not partial:
            uniques.setdefault(table, []).append(tuple(cols))
    tables = {
        name: Table(name, tuple(cols), pks.get(name, ()), tuple(fks.get(name, ())),
                    tuple(uniques.get(name, ())))
        for name, cols in columns.items()
    }
    return dependency_order(tables)


def unique_keys(conn: psycopg.Connection,
                schema: str = APP_SCHEMA) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Every unique index (primary keys and unique constraints included) per app table, as
    (index name, its plain columns); an expression's part of an index is left out."""
    found: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for table, index, columns, _, _ in conn.execute(_UNIQUE_SQL, {"schema": schema}):
        if table not in EXCLUDED_TABLES:
            found.setdefault(table, []).append((index, tuple(columns)))
    return found


def dependency_order(tables: dict[str, Table]) -> list[Table]:
    """Referenced tables first; ties and cycles broken by name so the order is stable."""
    remaining = dict(sorted(tables.items()))
    ordered: list[Table] = []
    placed: set[str] = set()
    while remaining:
        ready = [
            name for name, t in remaining.items()
            if all(fk.ref_table in placed or fk.ref_table == name or fk.ref_table not in tables
                   for fk in t.foreign_keys)
        ]
        if not ready:  # a reference cycle: take the first by name, deferred FKs cover it
            ready = [next(iter(remaining))]
        for name in ready:
            ordered.append(remaining.pop(name))
            placed.add(name)
    return ordered


@dataclass(frozen=True)
class TableStats:
    rows_estimate: int  # the planner's, free: enough to size a progress bar
    bytes: int  # on disk, without indexes: enough to decide on parallel streams


def table_stats(conn: psycopg.Connection, tables: list[Table]) -> dict[str, TableStats]:
    """Cheap size facts per table, in one query (no table is scanned)."""
    found = conn.execute(
        "SELECT c.relname, greatest(c.reltuples, 0)::bigint, "
        "coalesce(pg_table_size(c.oid), 0) "  # NULL for a table dropped meanwhile
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        (APP_SCHEMA, [t.name for t in tables])).fetchall()
    stats = {name: TableStats(rows, size) for name, rows, size in found}
    return {t.name: stats.get(t.name, TableStats(0, 0)) for t in tables}


# How long to wait for other sessions (the app) to release the tables before giving up.
LOCK_TIMEOUT = "30s"


def lock_tables(conn: psycopg.Connection, tables: list[Table], mode: str, *, what: str) -> None:
    """LOCK the tables in `mode` within the current transaction, waiting at most LOCK_TIMEOUT;
    the wait's end is one OpsError saying `what` failed and that nothing changed."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    try:
        conn.execute(sql.SQL("LOCK TABLE {} IN {} MODE").format(
            sql.SQL(", ").join(t.ident for t in tables), sql.SQL(mode)))
    except psycopg.errors.LockNotAvailable:
        raise lock_wait_error(what) from None
    conn.execute("SET LOCAL lock_timeout = 0")


def lock_wait_error(what: str) -> OpsError:
    """The one-line error for a lock wait that timed out (the app still holds the tables)."""
    return OpsError(
        f"{what}: the tables are in use by another session (waited {LOCK_TIMEOUT}); "
        "nothing was changed",
        hint="Stop the app (or other sessions using the tables) and try again.",
    )


def truncate_statement(tables: list[Table]) -> sql.Composed:
    """One TRUNCATE for all tables: no CASCADE, so nothing outside the list is ever emptied."""
    return sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
        sql.SQL(", ").join(t.ident for t in tables))


def row_counts(conn: psycopg.Connection, tables: list[Table]) -> dict[str, int]:
    """Exact row count per table, in one round trip."""
    if not tables:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {}").format(sql.Literal(t.name), t.ident)
        for t in tables
    )
    counts: dict[str, int] = dict(conn.execute(query).fetchall())
    return {t.name: counts[t.name] for t in tables}


def require_schema(tables: list[Table]) -> None:
    """Raise the 'run push first' error when the app schema has not been created."""
    if not tables:
        raise OpsError(
            "the database has no Tasklets tables (schema never pushed)",
            hint=f"Run {suggest('push')} first.",
        )


def current_revision(conn: psycopg.Connection) -> str | None:
    """The database's Alembic revision, or None when it was never migrated."""
    exists = scalar(conn, "SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
    return row[0] if row else None
