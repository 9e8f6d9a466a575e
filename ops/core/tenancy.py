"""Which tenant a row belongs to, derived from the catalog: the one place that decides it, for
backing up, restoring, resetting and copying a single tenant.

The rules, applied to whatever tables the database holds (no hand-kept list: a new table is
covered as soon as its foreign keys say where it belongs):
- the tenants table: its primary key is the tenant's id;
- a table with a `tenant_id` column: that column;
- any other table: a NOT NULL foreign key to a table already placed (client_products through
  clients, item_tags through tags, team_members through teams), the shortest such path, ties
  broken by column order. A nullable key cannot place a row whose key is NULL.
A table the rules cannot place is an error naming it: guessing would put its rows into every
tenant's backup, or into none.

Membership is a SQL predicate over a row alias with the tenant id as a literal, so the same
text serves a COPY query (which takes no parameters), a DELETE, a row lock and a check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ops.core.catalog import APP_SCHEMA, ForeignKey, Table
from ops.core.errors import NotFound, OpsError
from ops.core.limits import summarize
from ops.core.output import suggest

# The tenant `seed lookups` creates: the one the sample data and the beads import belong to.
SYSTECH_TENANT = "SysTech"
TENANT_TABLE = "tenants"
TENANT_COLUMN = "tenant_id"
TENANT_NAME_COLUMN = "name"

_NUMBER = re.compile(r"[0-9]+")


TENANT_SLUG_COLUMN = "slug"


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    # what identifies a tenant across databases (ids are per database); None where the
    # tenants table, or an older backup's meta, has none. Not part of equality: the same
    # row read with or without it is the same tenant.
    slug: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.name} (id {self.id})"

    def as_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.slug is not None:
            meta["slug"] = self.slug
        return meta


def pick_tenant(tenants: Iterable[Tenant], ref: str) -> Tenant | None:
    """The tenant `ref` names: by id when it is a number and such a tenant exists, else by
    name (so a tenant called "42" is still reachable when no tenant has id 42), else by
    slug."""
    candidates = list(tenants)
    if _NUMBER.fullmatch(ref):
        for tenant in candidates:
            if tenant.id == int(ref):
                return tenant
    return next((tenant for tenant in candidates if tenant.name == ref), None) \
        or next((tenant for tenant in candidates if tenant.slug == ref), None)


@dataclass(frozen=True)
class Placement:
    table: Table
    via: ForeignKey | None  # the path's first step; None: the tenants table or tenant_id
    depth: int  # 0 the tenants table, 1 a tenant_id column, 2+ through foreign keys


class TenantScope:
    """Every app table placed in a tenant (build it with `tenant_scope`)."""

    def __init__(self, root: Table, placements: list[Placement]) -> None:
        self.root = root
        self.placements = {p.table.name: p for p in placements}
        self.tables = [p.table for p in placements]  # in the caller's (dependency) order

    def via(self, table: str) -> ForeignKey | None:
        """The foreign key that places `table`'s rows (None: the root or a tenant_id table)."""
        return self.placements[table].via

    def membership_columns(self, table: str) -> tuple[str, ...]:
        """The columns whose values decide which tenant a row of `table` belongs to."""
        place = self.placements[table]
        if place.via is not None:
            return place.via.columns
        return self.root.primary_key if table == self.root.name else (TENANT_COLUMN,)

    def places(self, table: Table, fk: ForeignKey) -> bool:
        """Whether `fk` is the key that places `table`'s rows: its rows and the rows it
        references are then always of the same tenant."""
        place = self.placements[table.name]
        return fk == place.via or (place.depth == 1 and fk.columns == (TENANT_COLUMN,)
                                   and fk.ref_table == self.root.name)

    def anchors(self) -> list[Table]:
        """The tables every tenant row hangs from (the tenants table, and the tables a path
        goes through): locking the tenant's rows there stops new rows joining the tenant,
        since each insert's foreign-key check must share-lock one of them."""
        names = {self.root.name} | {p.via.ref_table for p in self.placements.values()
                                    if p.via is not None}
        return [t for t in self.tables if t.name in names]

    def rows(self, table: str, tenant_id: int, alias: str = "x") -> sql.Composable:
        """SQL that is true for the rows of `table`, named `alias`, of the tenant."""
        return self._predicate(table, sql.Literal(tenant_id), alias, 0)

    def _predicate(self, table: str, tenant: sql.Composable, alias: str,
                   level: int) -> sql.Composable:
        place = self.placements[table]
        if place.via is None:
            column = self.membership_columns(table)[0]
            return sql.SQL("{}.{} = {}").format(sql.Identifier(alias), sql.Identifier(column),
                                                tenant)
        fk = place.via
        inner = f"_tenant_{level + 1}"
        return sql.SQL("({}) IN (SELECT {} FROM {} {} WHERE {})").format(
            sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias),
                                                       sql.Identifier(c)) for c in fk.columns),
            sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(inner),
                                                       sql.Identifier(c))
                               for c in fk.ref_columns),
            sql.Identifier(APP_SCHEMA, fk.ref_table), sql.Identifier(inner),
            self._predicate(fk.ref_table, tenant, inner, level + 1))

    @property
    def name_column(self) -> str:
        columns = self.root.column_names
        return TENANT_NAME_COLUMN if TENANT_NAME_COLUMN in columns else self.root.primary_key[0]

    def find(self, conn: psycopg.Connection, ref: str) -> Tenant:
        """The tenant `ref` (a name or an id) names in the database; NotFound otherwise."""
        found = self.lookup(conn, ref)
        if found is None:
            raise NotFound(f"no tenant {ref!r} in the database",
                           hint=f"Tenants there: {self.listing(conn)}.")
        return found

    def lookup(self, conn: psycopg.Connection, ref: str) -> Tenant | None:
        number = int(ref) if _NUMBER.fullmatch(ref) else None
        where = sql.SQL("{id} = %s OR {name}::text = %s").format(
            id=sql.Identifier(self.root.primary_key[0]), name=sql.Identifier(self.name_column))
        if TENANT_SLUG_COLUMN in self.root.column_names:
            where = sql.SQL("{} OR {}::text = %s").format(where,
                                                          sql.Identifier(TENANT_SLUG_COLUMN))
            return pick_tenant(self.select(conn, where, (number, ref, ref)), ref)
        return pick_tenant(self.select(conn, where, (number, ref)), ref)

    def by_id(self, conn: psycopg.Connection, tenant_id: int) -> Tenant | None:
        found = self.select(conn, sql.SQL("{} = %s").format(
            sql.Identifier(self.root.primary_key[0])), (tenant_id,))
        return found[0] if found else None

    def select(self, conn: psycopg.Connection, where: sql.Composable,
               params: tuple[Any, ...] = ()) -> list[Tenant]:
        """The live tenants `where` (over the tenants table's columns) selects, by id."""
        slug = sql.SQL("{}::text").format(sql.Identifier(TENANT_SLUG_COLUMN)) \
            if TENANT_SLUG_COLUMN in self.root.column_names else sql.SQL("NULL::text")
        query = sql.SQL("SELECT {id}, {name}::text, {slug} FROM {root} WHERE {where} "
                        "ORDER BY 1").format(id=sql.Identifier(self.root.primary_key[0]),
                                             name=sql.Identifier(self.name_column), slug=slug,
                                             root=self.root.ident, where=where)
        return [Tenant(*row) for row in conn.execute(query, params)]

    def listing(self, conn: psycopg.Connection, limit: int = 10) -> str:
        """A few of the database's tenants, for hints: `SysTech (id 1), Acme (id 2)`."""
        rows = conn.execute(sql.SQL("SELECT {}, {}::text FROM {} ORDER BY 1 LIMIT %s").format(
            sql.Identifier(self.root.primary_key[0]), sql.Identifier(self.name_column),
            self.root.ident), (limit + 1,)).fetchall()
        if not rows:
            return "none (the database has no tenants)"
        return summarize([str(Tenant(*row)) for row in rows], limit)


def tenant_scope(tables: list[Table]) -> TenantScope:
    """Place every table of `tables` in a tenant; an OpsError names any that cannot be."""
    by_name = {t.name: t for t in tables}
    root = by_name.get(TENANT_TABLE)
    if root is None or len(root.primary_key) != 1:
        raise OpsError(f"the database has no {TENANT_TABLE} table with a one-column primary "
                       "key, so it has no tenants to work on")
    placed = {root.name: Placement(root, None, 0)}
    for table in tables:
        if table is not root and TENANT_COLUMN in table.column_names:
            placed[table.name] = Placement(table, None, 1)
    while True:  # one level of foreign keys per round: the first path found is a shortest
        found: dict[str, Placement] = {}
        for table in tables:
            if table.name in placed:
                continue
            nullable = {c.name for c in table.columns if c.nullable}
            steps = [fk for fk in table.foreign_keys
                     if fk.ref_table in placed and fk.ref_table != table.name
                     and not nullable.intersection(fk.columns)]
            if steps:
                order = table.column_names
                step = min(steps, key=lambda fk: [order.index(c) for c in fk.columns])
                found[table.name] = Placement(table, step, placed[step.ref_table].depth + 1)
        if not found:
            break
        placed.update(found)
    lost = [t.name for t in tables if t.name not in placed]
    if lost:
        raise OpsError(
            f"cannot tell which tenant the rows of {summarize(lost)} belong to: no "
            f"{TENANT_COLUMN} column and no NOT NULL foreign key to a table that has one",
            hint=f"Give the table a {TENANT_COLUMN} column (or a NOT NULL foreign key to a "
            "tenant's table); tenant commands need every row placed.")
    return TenantScope(root, [placed[t.name] for t in tables])


def find_systech_tenant(conn: psycopg.Connection) -> int | None:
    """The SysTech tenant's id, or None when `seed lookups` has not run."""
    row = conn.execute("SELECT id FROM tenants WHERE name = %s", (SYSTECH_TENANT,)).fetchone()
    return row[0] if row else None


def require_systech_tenant(conn: psycopg.Connection, *, needed_by: str = "this seed") -> int:
    """The SysTech tenant's id; the 'run seed lookups first' error when it is missing."""
    tenant_id = find_systech_tenant(conn)
    if tenant_id is None:
        raise OpsError(
            f"the {SYSTECH_TENANT} tenant does not exist — run `seed lookups` before "
            f"{needed_by}; nothing was written",
            hint=f"Run {suggest('seed lookups')}, then try again.",
        )
    return tenant_id
