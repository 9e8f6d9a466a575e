"""The checks a restore runs before it commits: foreign keys, then sequences.

Foreign keys are validated with one anti-join per constraint (a hash anti-join, far cheaper
than the per-row trigger checks): with session_replication_role = replica PostgreSQL checks
nothing itself, and in deferred mode this finds the bad row first and names it clearly.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ops.core.catalog import APP_SCHEMA, ForeignKey, Table
from ops.core.errors import OpsError


def validate_foreign_keys(conn: psycopg.Connection, tables: list[Table],
                          changed: set[str]) -> int:
    """Check every FK whose referencing or referenced table was replaced; returns how many.

    Raises an OpsError naming the constraint, the referencing row and the missing key.
    """
    by_name = {t.name: t for t in tables}
    checked = 0
    for table in tables:
        for fk in table.foreign_keys:
            if table.name not in changed and fk.ref_table not in changed:
                continue
            checked += 1
            bad = conn.execute(_dangling_query(table, fk)).fetchone()
            if bad is not None:
                raise _dangling_error(table, fk, by_name.get(fk.ref_table), bad)
    return checked


def _dangling_query(table: Table, fk: ForeignKey) -> sql.Composed:
    """The first referencing row whose key (MATCH SIMPLE: all columns set) has no target."""
    shown = list(table.primary_key) + [c for c in fk.columns if c not in table.primary_key]
    return sql.SQL(
        "SELECT {shown} FROM {child} c WHERE {not_null} AND NOT EXISTS "
        "(SELECT FROM {parent} p WHERE {match}) LIMIT 1"
    ).format(
        shown=sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(c))
                                 for c in shown),
        child=table.ident,
        parent=sql.Identifier(APP_SCHEMA, fk.ref_table),
        not_null=sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                       for c in fk.columns),
        match=sql.SQL(" AND ").join(
            sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(c))
            for c, r in zip(fk.columns, fk.ref_columns, strict=True)),
    )


def _dangling_error(table: Table, fk: ForeignKey, parent: Table | None,
                    bad: tuple) -> OpsError:
    shown = list(table.primary_key) + [c for c in fk.columns if c not in table.primary_key]
    values = dict(zip(shown, bad, strict=True))
    row = ", ".join(f"{c}={values[c]}" for c in table.primary_key) or "(no primary key)"
    key = ", ".join(f"{c}={values[c]}" for c in fk.columns)
    target = ", ".join(f"{r}={values[c]}" for c, r in zip(fk.columns, fk.ref_columns,
                                                            strict=True))
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
        qualified = table.ident.as_string(conn)
        for column in table.columns:
            if not (column.identity or column.has_default):
                continue
            found = conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = pg_get_serial_sequence(%s, %s)::regclass",
                (qualified, column.name)).fetchone()
            if found is None:
                continue
            sequence = sql.Identifier(*found)
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
