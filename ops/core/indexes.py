"""Indexes and key constraints set aside for a bulk load and rebuilt after it, in the
loader's transaction: the tables a restore empties, the tables a volume seed grows.

Loading rows into an indexed table updates every index row by row; building each index
once over the loaded table sorts instead, and re-adding a foreign key validates it with one
query over both tables. At scale 10 the server's part of a load into bare tables plus the
rebuild is about a quarter less than a load into indexed tables (pg_restore --data-only's
way), and the rebuild checks exactly what the indexes and constraints would have checked
row by row: unique keys, exclusions and foreign keys.

A failure anywhere rolls the drops back with the data. Only what its definition recreates
exactly is set aside: when any table has more (an index with a comment, a clustered or
replica-identity index, one in another tablespace, per-column statistics targets,
partitions or inheritance, a key a table outside the load references), or the role may not
drop it, nothing is set aside and the load goes into the indexed tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import psycopg
from psycopg import errors, sql

from ops.core.catalog import APP_SCHEMA
from ops.core.db import scalar
from ops.core.errors import OpsError

INDEX, KEY, FOREIGN_KEY = "index", "key", "foreign key"
EVERY_KIND = (INDEX, KEY, FOREIGN_KEY)


@dataclass(frozen=True)
class Definition:
    """One index or constraint to recreate: `text` is CREATE INDEX ... or, for a
    constraint, what follows ADD CONSTRAINT name."""

    kind: str
    table: str
    name: str
    text: str


# Turns a foreign key that failed to validate into the error naming its first dangling row.
Explain = Callable[[Definition], OpsError | None]


@dataclass
class SetAside:
    """What was dropped, in the order it is recreated: indexes, keys, foreign keys."""

    definitions: list[Definition] = field(default_factory=list)
    kept_because: str | None = None  # nothing was set aside: why

    @property
    def foreign_keys(self) -> list[Definition]:
        return [d for d in self.definitions if d.kind == FOREIGN_KEY]


# Why a table's indexes cannot be set aside and recreated from their definitions alone;
# the first reason found is reported.
_BLOCKERS_SQL = """
WITH t AS (
  SELECT c.oid, c.relname, c.relkind, c.relispartition FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %(schema)s AND c.relname = ANY(%(names)s)
), i AS (
  SELECT t.relname, x.*, ic.relname AS index_name, ic.reltablespace FROM t
  JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class ic ON ic.oid = x.indexrelid
)
SELECT relname, 'it is partitioned or inherits' FROM t
  WHERE relkind <> 'r' OR relispartition
     OR EXISTS (SELECT FROM pg_inherits h WHERE t.oid IN (h.inhrelid, h.inhparent))
UNION ALL
SELECT relname, 'index ' || index_name || ' is ' || CASE
    WHEN NOT indisvalid THEN 'invalid' WHEN indisclustered THEN 'clustered'
    WHEN indisreplident THEN 'the replica identity'
    WHEN reltablespace <> 0 THEN 'in another tablespace'
    ELSE 'commented or has statistics targets' END FROM i
  WHERE %(keys)s AND (NOT indisvalid OR indisclustered OR indisreplident OR reltablespace <> 0
     OR EXISTS (SELECT FROM pg_description d WHERE d.objoid = i.indexrelid)
     OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = i.indexrelid
                AND a.attstattarget > 0))
UNION ALL
SELECT t.relname, 'constraint ' || con.conname || ' is commented' FROM t
  JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x', 'f')
  WHERE (%(keys)s OR con.contype = 'f')
    AND EXISTS (SELECT FROM pg_description d WHERE d.objoid = con.oid)
UNION ALL
SELECT t.relname, 'table ' || con.conrelid::regclass::text || ' references it' FROM t
  JOIN pg_constraint con ON con.confrelid = t.oid AND con.contype = 'f'
  WHERE %(keys)s AND con.conrelid NOT IN (SELECT oid FROM t)
LIMIT 1
"""

# Every index and constraint to set aside, in the order they are recreated.
_DEFINITIONS_SQL = """
WITH t AS (
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %(schema)s AND c.relname = ANY(%(names)s)
)
SELECT kind, relname, name, text FROM (
  SELECT 1 AS rank, 'index' AS kind, t.relname, ic.relname AS name,
         pg_get_indexdef(x.indexrelid) AS text
  FROM t JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class ic ON ic.oid = x.indexrelid
  WHERE NOT EXISTS (SELECT FROM pg_constraint con WHERE con.conindid = x.indexrelid
                    AND con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x'))
  UNION ALL
  SELECT CASE con.contype WHEN 'f' THEN 3 ELSE 2 END,
         CASE con.contype WHEN 'f' THEN 'foreign key' ELSE 'key' END,
         t.relname, con.conname, pg_get_constraintdef(con.oid)
  FROM t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x', 'f')
) d WHERE kind = ANY(%(kinds)s) ORDER BY rank, relname, name
"""


def set_aside(conn: psycopg.Connection, tables: Collection[str],
              kinds: Collection[str] = EVERY_KIND) -> SetAside:
    """Drop the indexes, keys and foreign keys (or only the `kinds` given) of the app tables
    named, in the caller's transaction, for `rebuild` to recreate after the load; nothing
    when one cannot be recreated exactly or a drop is refused (`kept_because` says why)."""
    params = {"schema": APP_SCHEMA, "names": list(tables), "kinds": list(kinds),
              "keys": bool({INDEX, KEY} & set(kinds))}
    # Definitions with every name schema-qualified, whatever the session's search_path.
    search_path = scalar(conn, "SELECT current_setting('search_path'), "
                               "set_config('search_path', 'pg_catalog', true)")
    try:
        blocker = conn.execute(_BLOCKERS_SQL, params).fetchone()
        if blocker is not None:
            return SetAside(kept_because=f"table {blocker[0]}: {blocker[1]}")
        found = [Definition(*row) for row in conn.execute(_DEFINITIONS_SQL, params)]
    finally:
        conn.execute("SELECT set_config('search_path', %s, true)", (search_path,))
    try:
        with conn.transaction():  # a savepoint: a refused drop leaves every index in place
            for definition in reversed(found):
                conn.execute(_drop_statement(definition))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        return SetAside(kept_because=f"a drop was refused: {exc.diag.message_primary}")
    return SetAside(found)


def _drop_statement(definition: Definition) -> sql.Composed:
    if definition.kind == INDEX:
        return sql.SQL("DROP INDEX {}").format(sql.Identifier(APP_SCHEMA, definition.name))
    return sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
        sql.Identifier(APP_SCHEMA, definition.table), sql.Identifier(definition.name))


def rebuild(conn: psycopg.Connection, aside: SetAside, explain: Explain | None = None) -> None:
    """Recreate what `set_aside` dropped, indexes first. A duplicate key in the loaded rows
    raises an OpsError naming it; so does a dangling reference: `explain(foreign_key)`, when
    given, finds the row (the failed constraint is rolled back to a savepoint first)."""
    for definition in aside.definitions:
        statement: sql.Composable
        if definition.kind == INDEX:
            statement = sql.SQL(definition.text)
        else:
            statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(APP_SCHEMA, definition.table), sql.Identifier(definition.name),
                sql.SQL(definition.text))
        if definition.kind == FOREIGN_KEY:
            _add_foreign_key(conn, statement, definition, explain)
            continue
        try:
            conn.execute(statement)
        except (errors.UniqueViolation, errors.ExclusionViolation) as exc:
            raise _duplicate_error(definition, exc) from None


def _add_foreign_key(conn: psycopg.Connection, statement: sql.SQL | sql.Composed,
                     definition: Definition, explain: Explain | None) -> None:
    try:
        with conn.transaction():  # a savepoint: `explain` may query after a failure
            conn.execute(statement)
    except errors.ForeignKeyViolation as exc:
        found = explain(definition) if explain else None
        raise found or OpsError(f"table {definition.table}: {exc.diag.message_primary} "
                                f"({exc.diag.message_detail}); nothing was changed") from None


_DUPLICATED = re.compile(r"Key (.*) is duplicated\.|Key (.*) conflicts with key (.*)\.")


def _duplicate_error(definition: Definition, exc: psycopg.Error) -> OpsError:
    detail = exc.diag.message_detail or ""
    match = _DUPLICATED.match(detail)
    if match and match[1]:
        what = f"duplicate key {match[1]}: two rows have it"
    elif match:
        what = f"rows {match[2]} and {match[3]} conflict"
    else:
        what = exc.diag.message_primary or "duplicate key"
    return OpsError(f"table {definition.table}: {what} ({definition.kind} {definition.name}); "
                    "nothing was changed",
                    hint="The backup is inconsistent: fix or remove one of those rows, or "
                    "restore another backup.")
