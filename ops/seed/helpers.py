"""Small building blocks every seed needs, built-in or custom (`seeds/*.py` import these).

    from ops.seed.helpers import announce, get_or_create, hash_password, require_systech_tenant

A seed that creates a tenant gives it a slug: `tenant_slug(conn, name)`.

All of them work on the connection the tool hands to a seed, inside the transaction the tool
owns: they never commit, so a failing seed leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ops.core.output import Reporter
from ops.core.passwords import hash_password
from ops.core.slugs import free_slug, slugify
from ops.core.tenancy import SYSTECH_TENANT, find_systech_tenant, require_systech_tenant

# SYSTECH_TENANT and its check live in ops.core.tenancy; seeds keep importing them from here.
__all__ = ["SYSTECH_TENANT", "Tally", "announce", "find_systech_tenant", "get_or_create",
           "hash_password", "require_systech_tenant", "tenant_slug"]


def tenant_slug(conn: psycopg.Connection, name: str) -> str:
    """A free slug for a new tenant called `name` (`acme`, or `acme-2` when that is taken)."""
    return free_slug(conn, slugify(name))


Values = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None


def get_or_create(
    conn: psycopg.Connection,
    table: str,
    key: Mapping[str, Any],
    values: Values = None,
    *,
    returning: str | None = "id",
) -> tuple[Any, bool]:
    """(`returning` column of the row matching `key`, created?), inserting key + values if absent.

    `key` is the natural key (e.g. tenant_id + email); a None in it matches NULL. `values`
    may be a callable so expensive columns (a bcrypt hash) are computed only on insert. Use
    `returning=None` for link tables without an id column. Dicts are stored as jsonb.
    """
    found = conn.execute(_select(table, key, returning), _params(key, skip_nulls=True)).fetchone()
    if found is not None:
        return (found[0] if returning else None), False
    extra = values() if callable(values) else (values or {})
    row = {**key, **extra}
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
        sql.Identifier(returning) if returning else sql.SQL("1"),
    )
    inserted = conn.execute(query, _params(row)).fetchone()
    if not returning:
        return None, True
    assert inserted is not None  # INSERT ... RETURNING gives the row it inserted
    return inserted[0], True


def _select(table: str, key: Mapping[str, Any], returning: str | None) -> sql.Composed:
    # `col IS NULL` rather than IS NOT DISTINCT FROM, so the other columns can use an index.
    conditions = [
        sql.SQL("{} IS NULL").format(sql.Identifier(col)) if value is None
        else sql.SQL("{} = %s").format(sql.Identifier(col))
        for col, value in key.items()
    ]
    return sql.SQL("SELECT {} FROM {} WHERE {} LIMIT 1").format(
        sql.Identifier(returning) if returning else sql.SQL("1"),
        sql.Identifier(table),
        sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true"),
    )


def _params(row: Mapping[str, Any], *, skip_nulls: bool = False) -> list[Any]:
    return [Jsonb(v) if isinstance(v, dict) else v
            for v in row.values() if not (skip_nulls and v is None)]


@dataclass
class Tally:
    """How many rows of one kind a seed created, and how many were already there."""

    created: int = 0
    existing: int = 0

    @property
    def total(self) -> int:
        return self.created + self.existing

    def add(self, created: bool) -> None:
        if created:
            self.created += 1
        else:
            self.existing += 1


def announce(report: Reporter, kind: str, label: str, created: bool,
             tally: Tally | None = None) -> None:
    """The seed-style line for one row: `✅ Created tag: x` or `✅ Using existing tag: x`."""
    report.line(f"✅ {'Created' if created else 'Using existing'} {kind}: {label}")
    if tally is not None:
        tally.add(created)
