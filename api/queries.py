"""Scoped SQL for the routes: every statement carries `tenant_id = <token's tenant>`, and a
client-portal user's reads are further limited to what its client licenses.

Column names come from pydantic models (a fixed whitelist), values are always parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

JSON_COLUMNS = frozenset({"metadata", "settings"})


@dataclass(frozen=True)
class Scope:
    """Whose rows a request may see: its tenant's; for a client-portal user (`client_id` set)
    only the products its client licenses, the work items under them, and their tags."""

    tenant_id: int
    client_id: int | None = None


_LICENSED = "(SELECT product_id FROM client_products WHERE client_id = %s)"
# What a client user may read, per table. A table without a rule is closed to client users.
_CLIENT_RULES = {
    "products": f"id IN {_LICENSED}",
    "epics": f"product_id IN {_LICENSED}",
    "features": f"product_id IN {_LICENSED}",
    "tasks": f"product_id IN {_LICENSED}",
    # Tags attached to a work item the user can see (tickets and ideas are not served).
    "tags": "id IN (SELECT it.tag_id FROM item_tags it"
            " LEFT JOIN epics e ON e.id = it.epic_id"
            " LEFT JOIN features f ON f.id = it.feature_id"
            " LEFT JOIN tasks t ON t.id = it.task_id"
            f" WHERE coalesce(e.product_id, f.product_id, t.product_id) IN {_LICENSED})",
}


def rows_as_dicts(conn: psycopg.Connection) -> psycopg.Cursor[dict[str, Any]]:
    """A cursor returning dicts; the connection itself keeps tuple rows for shared ops code."""
    return conn.cursor(row_factory=dict_row)


def _value(column: str, value: Any) -> Any:
    return Jsonb(value) if column in JSON_COLUMNS and value is not None else value


def _where(table: str, scope: Scope, filters: dict[str, Any],
           ignore_case: frozenset[str]) -> tuple[sql.Composable, list[Any]]:
    clauses: list[sql.Composable] = [sql.SQL("tenant_id = %s")]
    params: list[Any] = [scope.tenant_id]
    if scope.client_id is not None:
        if table not in _CLIENT_RULES:
            raise LookupError(f"no client-portal rule for table {table}")
        clauses.append(sql.SQL(_CLIENT_RULES[table]))
        params.append(scope.client_id)
    for column, value in filters.items():
        template = "lower({}) = lower(%s)" if column in ignore_case else "{} = %s"
        clauses.append(sql.SQL(template).format(sql.Identifier(column)))
        params.append(value)
    return sql.SQL(" AND ").join(clauses), params


def select_rows(conn: psycopg.Connection, table: str, scope: Scope,
                filters: dict[str, Any] | None = None, *, extra: str = "",
                ignore_case: frozenset[str] = frozenset(), limit: int = 100,
                offset: int = 0) -> list[dict[str, Any]]:
    """Rows of `table` in the scope matching `filters` (column = value), ordered by id.

    `extra` is a fixed SQL condition (no parameters) appended with AND.
    """
    where, params = _where(table, scope, filters or {}, ignore_case)
    if extra:
        where = sql.SQL("{} AND {}").format(where, sql.SQL(extra))
    query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY id LIMIT %s OFFSET %s").format(
        sql.Identifier(table), where)
    return rows_as_dicts(conn).execute(query, [*params, limit, offset]).fetchall()


def select_one(conn: psycopg.Connection, table: str, scope: Scope,
               row_id: int) -> dict[str, Any] | None:
    rows = select_rows(conn, table, scope, {"id": row_id}, limit=1)
    return rows[0] if rows else None


def insert_row(conn: psycopg.Connection, table: str, values: dict[str, Any]) -> dict[str, Any]:
    columns = list(values)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    row = rows_as_dicts(conn).execute(query, [_value(c, values[c]) for c in columns]).fetchone()
    if row is None:  # RETURNING gives the row: no trigger or rule in the schema drops one
        raise LookupError(f"INSERT INTO {table} returned no row")
    return row


def update_row(conn: psycopg.Connection, table: str, tenant_id: int, row_id: int,
               values: dict[str, Any]) -> dict[str, Any] | None:
    """Apply `values` to one row of the tenant (bumping updated_at); None if it is not there.

    Only internal users write, and they see the whole tenant.
    """
    if not values:
        return select_one(conn, table, Scope(tenant_id), row_id)
    assignments: list[sql.Composable] = [
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values]
    assignments.append(sql.SQL("updated_at = now()"))
    query = sql.SQL("UPDATE {} SET {} WHERE id = %s AND tenant_id = %s RETURNING *").format(
        sql.Identifier(table), sql.SQL(", ").join(assignments))
    params = [_value(c, v) for c, v in values.items()]
    return rows_as_dicts(conn).execute(query, [*params, row_id, tenant_id]).fetchone()
