"""A tenant's live rows: lock them, count them, delete them, and the checks around that -
references between the tenant's rows and everybody else's, and collisions of rows about to
be loaded with rows outside the tenant.

Every statement selects the tenant's rows through ops.core.tenancy's predicates, so it
touches (and locks) those rows only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import psycopg
from psycopg import sql

from ops.core.catalog import APP_SCHEMA, LOCK_TIMEOUT, ForeignKey, Table
from ops.core.db import scalar
from ops.core.errors import OpsError
from ops.core.limits import summarize
from ops.core.output import suggest_flag
from ops.core.tenancy import Tenant, TenantScope
from ops.restore.staging import Stage

COLLISIONS_SHOWN = 5


def begin(conn: psycopg.Connection) -> None:
    """Session limits for a tenant transaction: row locks held by the tenant's own sessions
    are waited for at most LOCK_TIMEOUT (then `busy_error`); nothing else times out."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    conn.execute("SET LOCAL statement_timeout = 0")


def busy_error(tenant: Tenant | str, what: str) -> OpsError:
    return OpsError(
        f"{what}: rows of tenant {tenant} are in use by another session (waited "
        f"{LOCK_TIMEOUT}); nothing was changed",
        hint="Let that tenant's running work finish (or stop it), then try again; other "
        "tenants are not affected.")


def lock_tenant(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant) -> None:
    """Lock the tenant's rows in the anchor tables FOR UPDATE until commit.

    Every row that joins the tenant - a task with its tenant_id, an item tag on one of its
    tags - must share-lock (FOR KEY SHARE) its anchor row in its foreign-key check, so from
    here no session can add rows to the tenant; its existing rows are locked as they are
    read for the safety backup, or deleted. Other tenants' rows are not touched.
    """
    for table in scope.anchors():
        conn.execute(sql.SQL("SELECT FROM {} x WHERE {} FOR UPDATE").format(
            table.ident, scope.rows(table.name, tenant.id)))


def count_rows(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant,
               stages: dict[str, Stage] | None = None) -> dict[str, int]:
    """The tenant's rows per table (with `stages`: those not staged identically, which a
    restore that keeps identical rows deletes), in one round trip."""
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, count(*) FROM {} x WHERE {}{}").format(
            sql.Literal(t.name), t.ident, scope.rows(t.name, tenant.id),
            _unless_staged(stages[t.name]) if stages else sql.SQL(""))
        for t in scope.tables)
    counts: dict[str, int] = dict(conn.execute(query).fetchall())
    return {t.name: counts[t.name] for t in scope.tables}


# Types whose equality is identity (same value, same bytes): compared as values. Every other
# type is compared as text, which equality would blur: numeric 22.30 = 22.3, jsonb 1.0 =
# 1.00, float -0 = 0, interval '1 day' = '24 hours', json has no equality at all.
_EXACT_TYPES = frozenset({"smallint", "integer", "bigint", "boolean", "text", "uuid", "date",
                          "character varying", "bytea", "timestamp with time zone",
                          "timestamp without time zone"})


def same_row(stage: Stage, *, whole: bool = True) -> sql.Composable | None:
    """SQL true when the live row `x` and the staged row `s` are the same: the same primary
    key and (`whole`, or without a primary key) the same value of every column, exactly
    (numeric digits, json text, timestamps to the microsecond). None when the stage lacks
    columns (a backup from another schema): then rows cannot be compared."""
    table = stage.table
    columns = table.writable_columns
    if set(stage.columns) != {c.name for c in columns}:
        return None
    key = [sql.SQL("x.{0} = s.{0}").format(sql.Identifier(c)) for c in table.primary_key]
    if table.primary_key and not whole:
        return sql.SQL(" AND ").join(key)
    as_values = [c.name for c in columns if _exact(c.type)]
    as_text = [c.name for c in columns if not _exact(c.type)]
    parts = list(key)
    for names, suffix in ((as_values, ""), (as_text, "::text")):
        if names:
            parts.append(sql.SQL("({}) IS NOT DISTINCT FROM ({})").format(*(
                sql.SQL(", ").join(sql.SQL("{}.{}" + suffix).format(sql.Identifier(alias),
                                                                sql.Identifier(c))
                                   for c in names) for alias in ("x", "s"))))
    return sql.SQL(" AND ").join(parts)


def _exact(type_name: str) -> bool:
    base = type_name.removesuffix("[]").split("(")[0]
    return base in _EXACT_TYPES


def _unless_staged(stage: Stage) -> sql.Composable:
    """` AND` the live row `x` has no identical staged row (nothing when rows cannot be
    compared)."""
    same = same_row(stage)
    if same is None:
        return sql.SQL("")
    return sql.SQL(" AND NOT EXISTS (SELECT FROM {} s WHERE {})").format(stage.ident, same)


def count_loads(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant,
                stages: dict[str, Stage]) -> dict[str, int]:
    """Staged rows with no identical live row of the tenant: what a restore that keeps
    identical rows inserts."""
    counts: dict[str, int] = {}
    for name, stage in stages.items():
        same = same_row(stage)
        if same is None or not stage.rows:
            counts[name] = stage.rows
            continue
        counts[name] = scalar(conn, sql.SQL(
            "SELECT count(*) FROM {} s WHERE NOT EXISTS (SELECT FROM {} x WHERE {} AND {})"
        ).format(stage.ident, stage.table.ident, scope.rows(name, tenant.id), same))
    return counts


def _references(scope: TenantScope) -> Iterator[tuple[Table, ForeignKey]]:
    for table in scope.tables:
        for fk in table.foreign_keys:
            yield table, fk


def outside_references(scope: TenantScope) -> Iterator[tuple[Table, ForeignKey]]:
    """Foreign keys whose rows may be outside the tenant while the rows they reference are
    in it (every key but the one that places a table: that one never crosses tenants)."""
    return ((table, fk) for table, fk in _references(scope) if not scope.places(table, fk))


class Gone:
    """Temporary tables of the keys of deleted tenant rows that the load does not bring back,
    per referenced table: what no row may reference afterwards."""

    def __init__(self, conn: psycopg.Connection, scope: TenantScope) -> None:
        self.columns: dict[str, list[str]] = {}
        for _, fk in _references(scope):
            known = self.columns.setdefault(fk.ref_table, [])
            known.extend(c for c in fk.ref_columns if c not in known)
        self.tables: dict[str, sql.Identifier] = {}
        self.rows: dict[str, int] = {}  # keys kept per table: most often none
        by_name = {t.name: t for t in scope.tables}
        for index, (name, columns) in enumerate(self.columns.items()):
            types = {c.name: c.type for c in by_name[name].columns}
            ident = sql.Identifier("pg_temp", f"tenant_gone_{index}")
            conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                ident, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c),
                                                                 sql.SQL(types[c]))
                                          for c in columns)))
            self.tables[name] = ident


def delete_rows(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant, *,
                keep_root: bool = False, gone: Gone | None = None,
                stages: dict[str, Stage] | None = None,
                keep_identical: bool = False) -> dict[str, int]:
    """DELETE the tenant's rows, children first; returns how many per table (load order).

    With `gone`, the keys of deleted rows that `stages` does not hold again (all of them
    without stages) are kept there for `refuse_dangling`. `keep_identical` leaves the rows
    that `stages` holds identically (only with foreign-key triggers off: deleting a parent
    would otherwise run its ON DELETE actions on the children left in place).
    """
    deleted: dict[str, int] = {}
    for table in reversed(scope.tables):
        if keep_root and table is scope.root:
            deleted[table.name] = 0
            continue
        where = scope.rows(table.name, tenant.id)
        if keep_identical and stages is not None:
            where = sql.SQL("{}{}").format(where, _unless_staged(stages[table.name]))
        columns = gone.columns.get(table.name) if gone is not None else None
        if not columns or gone is None:
            deleted[table.name] = conn.execute(sql.SQL("DELETE FROM {} x WHERE {}").format(
                table.ident, where)).rowcount
            continue
        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        back: sql.Composable = sql.SQL("")
        if stages is not None:
            back = sql.SQL(" WHERE NOT EXISTS (SELECT FROM {} s WHERE {})").format(
                stages[table.name].ident, sql.SQL(" AND ").join(
                    sql.SQL("s.{0} = d.{0}").format(sql.Identifier(c)) for c in columns))
        # A SELECT of two counts: always one row.
        deleted[table.name], gone.rows[table.name] = cast("tuple[int, int]", conn.execute(sql.SQL(
            "WITH d AS (DELETE FROM {table} x WHERE {where} RETURNING {cols}), "
            "g AS (INSERT INTO {gone} SELECT {cols} FROM d{back} RETURNING 1) "
            "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM g)"
        ).format(table=table.ident, where=where, cols=cols, gone=gone.tables[table.name],
                 back=back)).fetchone())
    return dict(reversed(deleted.items()))


def refuse_dangling(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant,
                    gone: Gone) -> None:
    """After the delete (and load): no row - outside the tenant, or of it and left in place -
    may reference a deleted row that did not come back. One OpsError naming the first."""
    for table, fk in _references(scope):
        if not gone.rows.get(fk.ref_table):
            continue
        bad = conn.execute(sql.SQL(
            "SELECT {shown} FROM {table} c WHERE ({cols}) IN (SELECT {refs} FROM {gone}) "
            "LIMIT 1").format(shown=_shown(table, fk), table=table.ident,
                              cols=_columns("c", fk.columns), refs=_columns(None, fk.ref_columns),
                              gone=gone.tables[fk.ref_table])).fetchone()
        if bad is not None:
            raise OpsError(
                f"{_describe(table, fk, bad)} references a {fk.ref_table} row of tenant "
                f"{tenant} that would be gone (foreign key {fk.name}); nothing was changed",
                hint="Restore a backup that still has that row, or change that reference "
                "first: rows of other tenants are never changed.")


def refuse_outside_references(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant,
                              *, keep_root: bool = False) -> None:
    """Before deleting as a non-superuser: refuse when a row outside the tenant references
    one of its rows. Foreign keys are only deferred then, and ON DELETE actions (CASCADE,
    SET NULL) cannot be: deleting would change that row."""
    for table, fk in outside_references(scope):
        if keep_root and fk.ref_table == scope.root.name:
            continue
        bad = conn.execute(sql.SQL(
            "SELECT {shown} FROM {table} c WHERE NOT ({inside}) AND ({cols}) IN "
            "(SELECT {refs} FROM {parent} x WHERE {parent_rows}) LIMIT 1").format(
            shown=_shown(table, fk), table=table.ident,
            inside=scope.rows(table.name, tenant.id, "c"), cols=_columns("c", fk.columns),
            refs=_columns("x", fk.ref_columns),
            parent=sql.Identifier(APP_SCHEMA, fk.ref_table),
            parent_rows=scope.rows(fk.ref_table, tenant.id))).fetchone()
        if bad is not None:
            raise OpsError(
                f"{_describe(table, fk, bad)}, outside tenant {tenant}, references one of its "
                f"{fk.ref_table} rows (foreign key {fk.name}): deleting the tenant's rows "
                "would change it through the key's ON DELETE action; nothing was changed",
                hint="Change that reference first, or run as a superuser (foreign-key actions "
                "are then off, and a reference to a row the restore brings back is kept).")


def find_collisions(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
                    replaced: Tenant | None) -> list[str]:
    """The first few staged rows whose primary or unique key is taken by a live row
    (`replaced`'s rows, about to be deleted, do not count): `tasks id=5`."""
    found: list[str] = []
    for stage in stages.values():
        table = stage.table
        keys = ([table.primary_key] if table.primary_key else []) + list(table.unique_keys)
        for key in keys:
            if not stage.rows or not set(key) <= set(stage.columns):
                continue
            others = (sql.SQL(" AND NOT ({})").format(scope.rows(table.name, replaced.id))
                      if replaced is not None else sql.SQL(""))
            rows = conn.execute(sql.SQL(
                "SELECT {shown} FROM {stage} s WHERE EXISTS (SELECT FROM {table} x WHERE "
                "{match}{others}) LIMIT {limit}").format(
                shown=sql.SQL(", ").join(sql.SQL("s.{}::text").format(sql.Identifier(c))
                                         for c in key),
                stage=stage.ident, table=table.ident, others=others,
                match=sql.SQL(" AND ").join(sql.SQL("x.{0} = s.{0}").format(sql.Identifier(c))
                                            for c in key),
                limit=sql.Literal(COLLISIONS_SHOWN - len(found)))).fetchall()
            found += [f"{table.name} " + ", ".join(f"{c}={v}" for c, v in zip(key, row,
                                                                              strict=True))
                      for row in rows]
            if len(found) >= COLLISIONS_SHOWN:
                return found
    return found


def collision_error(found: list[str], tenant: Tenant, scope: TenantScope,
                    new_ids: bool) -> OpsError:
    names = f"{scope.root.name} {scope.name_column}="
    if all(item.startswith(names) for item in found):
        return OpsError(f"a tenant named {tenant.name!r} already exists here; nothing was "
                        "changed",
                        hint=f"Give the tenant another name: {suggest_flag('--rename NEW')}.")
    shown = summarize(found, COLLISIONS_SHOWN - 1)
    hint = (f"These keys are taken here; rename ({suggest_flag('--rename NEW')}) or change "
            "them in the source." if new_ids else "Load the tenant under fresh ids, e.g. into "
            f"another database, as `copy` does: {suggest_flag('--new-ids')} (with --rename NEW "
            "if its name is taken).")
    return OpsError(f"rows of tenant {tenant} collide with rows outside it: {shown}; nothing "
                    "was changed", hint=hint)


def _columns(alias: str | None, columns: tuple[str, ...]) -> sql.Composable:
    if alias is None:
        return sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c))
                              for c in columns)


def _shown(table: Table, fk: ForeignKey) -> sql.Composable:
    shown = list(table.primary_key) + [c for c in fk.columns if c not in table.primary_key]
    return sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(c)) for c in shown)


def _describe(table: Table, fk: ForeignKey, bad: tuple[Any, ...]) -> str:
    shown = list(table.primary_key) + [c for c in fk.columns if c not in table.primary_key]
    values = dict(zip(shown, bad, strict=True))
    row = ", ".join(f"{c}={values[c]}" for c in table.primary_key) or "(no primary key)"
    key = ", ".join(f"{c}={values[c]}" for c in fk.columns)
    return f"table {table.name} row {row} ({key})"
