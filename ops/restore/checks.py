"""The checks a restore runs before it commits: foreign keys, then sequences.

Foreign keys are validated with one anti-join per constraint (a hash anti-join, far cheaper
than the per-row trigger checks): with session_replication_role = replica PostgreSQL checks
nothing itself, and in deferred mode this finds the bad row first and names it clearly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, cast

import psycopg
from psycopg import sql

from ops.core.catalog import APP_SCHEMA, Column, ForeignKey, Table
from ops.core.db import scalar
from ops.core.errors import OpsError
from ops.core.indexes import Definition


def validate_foreign_keys(conn: psycopg.Connection, tables: list[Table],
                          changed: set[str], skip: Collection[str] = ()) -> int:
    """Check every FK whose referencing or referenced table was replaced, except those named
    in `skip` (re-added, so validated by PostgreSQL); returns how many.

    Raises an OpsError naming the constraint, the referencing row and the missing key.
    """
    by_name = {t.name: t for t in tables}
    checked = 0
    for table in tables:
        for fk in table.foreign_keys:
            if fk.name in skip or (table.name not in changed and fk.ref_table not in changed):
                continue
            checked += 1
            bad = conn.execute(_dangling_query(table, fk)).fetchone()
            if bad is not None:
                raise _dangling_error(table, fk, by_name.get(fk.ref_table), bad)
    return checked


def dangling_explainer(conn: psycopg.Connection,
                       tables: list[Table]) -> Callable[[Definition], OpsError | None]:
    """For ops.core.indexes.rebuild: the error naming the first dangling row of a foreign key
    that failed to validate (None when it is not one of `tables`' foreign keys)."""
    by_name = {t.name: t for t in tables}

    def explain(definition: Definition) -> OpsError | None:
        table = by_name.get(definition.table)
        fk = next((k for k in table.foreign_keys if k.name == definition.name), None) \
            if table is not None else None
        if table is None or fk is None:
            return None
        bad = conn.execute(_dangling_query(table, fk)).fetchone()
        return None if bad is None else _dangling_error(table, fk, by_name.get(fk.ref_table),
                                                        bad)

    return explain


def _dangling_query(table: Table, fk: ForeignKey, *, child: sql.Composable | None = None,
                    parent: sql.Composable | None = None, count: bool = False) -> sql.Composed:
    """The first referencing row whose key (MATCH SIMPLE: all columns set) has no target.

    `child` and `parent` read the rows from other relations with the tables' columns
    (staged copies) instead of the tables themselves. `count`: how many such rows there are
    instead - which makes the planner cost the whole anti-join: for the first row only, it
    may well pick a nested loop over two unindexed staged tables.
    """
    shown = _shown(table, fk)
    return sql.SQL(
        "SELECT {shown} FROM {child} c WHERE {not_null} AND NOT EXISTS "
        "(SELECT FROM {parent} p WHERE {match}){limit}"
    ).format(
        shown=sql.SQL("count(*)") if count else sql.SQL(", ").join(
            sql.SQL("c.{}::text").format(sql.Identifier(c)) for c in shown),
        limit=sql.SQL("") if count else sql.SQL(" LIMIT 1"),
        child=child if child is not None else table.ident,
        parent=parent if parent is not None else sql.Identifier(APP_SCHEMA, fk.ref_table),
        not_null=sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                       for c in fk.columns),
        match=_match(fk, "p"),
    )


def validate_staged_references(conn: psycopg.Connection, tables: list[Table],
                               staged: Callable[[str], sql.Composable]) -> int:
    """Check the foreign keys of rows just loaded from staged copies (`staged(name)`: the
    relation holding exactly the rows loaded into that table); returns how many were checked.

    A key found among the staged rows of the referenced table is all there is to check, with
    a join of two small staged copies; only when some point elsewhere (another tenant's row,
    a shared row) are they looked up in the live table, and share-locked there (FOR KEY
    SHARE) until commit so no other session can delete them meanwhile: foreign-key triggers,
    which would take that lock, may be switched off. Raises an OpsError naming the first
    dangling reference.
    """
    by_name = {t.name: t for t in tables}
    checked = 0
    for table in tables:
        for fk in table.foreign_keys:
            checked += 1
            inside = staged(fk.ref_table)
            child = staged(table.name)
            if not scalar(conn, _dangling_query(table, fk, child=child, parent=inside,
                                                count=True)):
                continue
            bad = conn.execute(_dangling_query(table, fk, child=child)).fetchone()
            if bad is not None:
                raise _dangling_error(table, fk, by_name.get(fk.ref_table), bad)
            conn.execute(sql.SQL(
                "SELECT FROM {parent} p WHERE ({refs}) IN (SELECT {cols} FROM {child} c WHERE "
                "NOT EXISTS (SELECT FROM {inside} s WHERE {match})) FOR KEY SHARE").format(
                parent=sql.Identifier(APP_SCHEMA, fk.ref_table),
                refs=sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(c))
                                        for c in fk.ref_columns),
                cols=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c))
                                        for c in fk.columns),
                child=child, inside=inside, match=_match(fk, "s")))
    return checked


def refuse_references_out(conn: psycopg.Connection, tables: list[Table],
                          staged: Callable[[str], sql.Composable], confined: Collection[str],
                          owner: str) -> None:
    """Refuse a staged row (`staged(name)`: the rows about to be loaded into that table)
    whose foreign key into a table of `confined` points to no staged row: the staged rows
    are one tenant's, `owner`, and a tenant's row may reference its own rows only (or a
    shared lookup, a table not confined). One anti-join per key over two staged tables (no
    live row is read); OpsError names the first such row and its reference.
    Run it before ids are remapped, while a key still means what the file meant by it."""
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table not in confined:
                continue
            child, parent = staged(table.name), staged(fk.ref_table)
            if not scalar(conn, _dangling_query(table, fk, child=child, parent=parent,
                                                count=True)):
                continue
            # The count just found such a row among staged rows no other session can change.
            bad = cast("tuple[Any, ...]", conn.execute(
                _dangling_query(table, fk, child=child, parent=parent)).fetchone())
            row, key, target = _reference(table, fk, bad)
            raise OpsError(
                f"table {table.name} row {row}: {key} points to a {fk.ref_table} row outside "
                f"tenant {owner} ({target} is not one of its rows; foreign key {fk.name}); "
                "nothing was changed",
                hint="A tenant's rows may reference only its own rows (and shared lookups): "
                "fix that row in the source, or use another backup.")


def _match(fk: ForeignKey, parent: str) -> sql.Composable:
    """The join condition of `fk` between the referenced row `parent` and the row `c`."""
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = c.{}").format(sql.Identifier(parent), sql.Identifier(r),
                                       sql.Identifier(c))
        for c, r in zip(fk.columns, fk.ref_columns, strict=True))


def _shown(table: Table, fk: ForeignKey) -> list[str]:
    """The columns `_dangling_query` returns: the row's primary key, then the key's columns."""
    return list(table.primary_key) + [c for c in fk.columns if c not in table.primary_key]


def _reference(table: Table, fk: ForeignKey, bad: tuple[Any, ...]) -> tuple[str, str, str]:
    """A row `_dangling_query` found, as text: its key, its reference, the row referenced."""
    values = dict(zip(_shown(table, fk), bad, strict=True))
    row = ", ".join(f"{c}={values[c]}" for c in table.primary_key) or "(no primary key)"
    key = ", ".join(f"{c}={values[c]}" for c in fk.columns)
    target = ", ".join(f"{r}={values[c]}" for c, r in zip(fk.columns, fk.ref_columns,
                                                            strict=True))
    return row, key, target


def _dangling_error(table: Table, fk: ForeignKey, parent: Table | None,
                    bad: tuple[Any, ...]) -> OpsError:
    row, key, target = _reference(table, fk, bad)
    return OpsError(
        f"table {table.name} row {row}: {key} points to a missing {fk.ref_table} row "
        f"({target} does not exist; foreign key {fk.name}); nothing was changed",
        hint="The backup is inconsistent (or lacks the referenced table): fix that row, "
        "or restore another backup.",
    )


def reset_sequences(conn: psycopg.Connection, tables: list[Table]) -> int:
    """Move every identity/serial sequence of `tables` past the highest restored value.

    Transactional (rolled back with the restore), unlike a bare setval.
    """
    reset = 0
    for table in tables:
        for column, sequence in serial_sequences(conn, table):
            # RESTART gives the sequence a new relfilenode in this transaction, which makes
            # the (otherwise non-transactional) setval roll back with everything else.
            conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sequence))
            conn.execute(sql.SQL(
                "SELECT setval(s.seqrelid, CASE WHEN m.top IS NULL OR m.top < s.seqstart "
                "THEN s.seqstart ELSE m.top END, m.top IS NOT NULL AND m.top >= s.seqstart) "
                "FROM (SELECT max({column})::bigint AS top FROM {table}) m, pg_sequence s "
                "WHERE s.seqrelid = {sequence}::regclass"
            ).format(column=sql.Identifier(column.name), table=table.ident,
                     sequence=sql.Literal(sequence.as_string(conn))))
            reset += 1
    return reset


def serial_sequences(conn: psycopg.Connection,
                     table: Table) -> Iterator[tuple[Column, sql.Identifier]]:
    """(column, its sequence) for every identity or serial column of `table`: the sequences
    pg_get_serial_sequence finds (owned by the column), in one query for the table."""
    by_name = {c.name: c for c in table.columns}
    for column, schema, sequence in conn.execute(_SEQUENCES_SQL,
                                                 (table.ident.as_string(conn),)):
        if column in by_name:
            yield by_name[column], sql.Identifier(schema, sequence)


_SEQUENCES_SQL = """
SELECT a.attname, n.nspname, s.relname
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = %s::regclass AND d.deptype IN ('a', 'i')
ORDER BY a.attnum
"""


def advance_sequences(conn: psycopg.Connection, tables: list[Table],
                      rows: Callable[[str], sql.Composable]) -> int:
    """Move each identity/serial sequence of `tables` past the highest value in `rows(name)`
    (rows about to be loaded) when it is behind; returns how many moved.

    Only ever forward, with setval: unlike ALTER SEQUENCE, which locks out every other
    session's nextval until commit, setval does not block concurrent inserts. It is not
    undone by a rollback, which costs nothing worse than a gap in the ids.
    """
    moved = 0
    for table in tables:
        for column, sequence in serial_sequences(conn, table):
            done = conn.execute(sql.SQL(
                "SELECT setval({name}::regclass, m.top) FROM (SELECT max({column})::bigint AS "
                "top FROM {rows}) m, {sequence} s WHERE m.top > s.last_value "
                "OR (m.top = s.last_value AND NOT s.is_called)").format(
                name=sql.Literal(sequence.as_string(conn)), column=sql.Identifier(column.name),
                rows=rows(table.name), sequence=sequence)).fetchone()
            moved += done is not None
    return moved
