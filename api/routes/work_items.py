"""List/get/create/update for epics, features and tasks: one set of handlers per kind.

No `from __future__ import annotations` here: the handlers are built in a loop and FastAPI
must see each kind's real model classes in their signatures.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import sql
from pydantic.alias_generators import to_camel

from api import models as m
from api.auth import Reader, Writer
from api.db import DbConn
from api.errors import invalid
from api.queries import insert_row, select_one, select_rows, update_row
from ops.core.fields import InputModel

# Columns that point at another item, which must be in the same product (and tenant).
ITEM_REFERENCES = {"epic_id": "epics", "feature_id": "features", "parent_task_id": "tasks"}


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    out: type[m.WorkItemOut]
    create: type[m.EpicCreate]
    update: type[InputModel]
    filters: type[m.EpicFilters]


KINDS = (
    Kind("epic", "epics", m.EpicOut, m.EpicCreate, m.EpicUpdate, m.EpicFilters),
    Kind("feature", "features", m.FeatureOut, m.FeatureCreate, m.FeatureUpdate,
         m.FeatureFilters),
    Kind("task", "tasks", m.TaskOut, m.TaskCreate, m.TaskUpdate, m.TaskFilters),
)


def _exists(conn: psycopg.Connection, table: str, row_id: int, **where: int) -> bool:
    conditions = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in ("id", *where))
    query = sql.SQL("SELECT 1 FROM {} WHERE {}").format(sql.Identifier(table), conditions)
    return conn.execute(query, (row_id, *where.values())).fetchone() is not None


def check_references(conn: psycopg.Connection, tenant_id: int, product_id: int,
                     values: dict[str, Any], *, item_id: int | None = None) -> None:
    """422 naming the field when a referenced row is not in this product/tenant."""
    for column, table in ITEM_REFERENCES.items():
        ref = values.get(column)
        if ref is None:
            continue
        if column == "parent_task_id" and ref == item_id:
            raise invalid(to_camel(column), "a task cannot be its own parent")
        if not _exists(conn, table, ref, product_id=product_id, tenant_id=tenant_id):
            raise invalid(to_camel(column), f"no such {table[:-1]} in this product")
    assignee = values.get("assignee_id")
    if assignee is not None and not _exists(conn, "users", assignee, tenant_id=tenant_id):
        raise invalid("assigneeId", "no such user in this tenant")


def _missing(kind: Kind) -> HTTPException:
    return HTTPException(404, detail=f"{kind.name} not found")


def _conflict(kind: Kind) -> HTTPException:
    return HTTPException(409, detail=f"{kind.name} with this externalSource and externalId "
                                     "already exists in the product")


Row = TypeVar("Row")


def _write(conn: psycopg.Connection, kind: Kind, action: Callable[[], Row]) -> Row:
    try:
        with conn.transaction():
            return action()
    except psycopg.errors.UniqueViolation:
        raise _conflict(kind) from None


def add_routes(router: APIRouter, kind: Kind) -> None:
    path = f"/{kind.table}"
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": m.ErrorOut, "description": f"No such {kind.name} in your tenant"}}
    ItemId = Annotated[int, Path(ge=1, le=m.MAX_ID)]
    if TYPE_CHECKING:  # what the models of every kind are: the handlers are checked as these
        Filters: TypeAlias = m.EpicFilters
        Create: TypeAlias = m.EpicCreate
        Update: TypeAlias = InputModel
        Out: TypeAlias = m.WorkItemOut
    else:  # FastAPI reads each kind's own models from the handlers' signatures
        Filters, Create, Update, Out = kind.filters, kind.create, kind.update, kind.out

    def list_items(user: Reader, conn: DbConn,
                   filters: Annotated[Filters, Query()]) -> list[dict[str, Any]]:
        where = filters.model_dump(by_alias=False, exclude_none=True,
                                   exclude=m.PAGING)  # type: ignore[arg-type]  # IncEx: no frozenset
        return select_rows(conn, kind.table, user.scope, where,
                           extra="" if filters.include_deleted else "deleted_at IS NULL",
                           limit=filters.limit, offset=filters.offset)

    def get_item(user: Reader, conn: DbConn, item_id: ItemId) -> dict[str, Any]:
        row = select_one(conn, kind.table, user.scope, item_id)
        if row is None:
            raise _missing(kind)
        return row

    def create_item(body: Create, user: Writer, conn: DbConn) -> dict[str, Any]:
        values = body.model_dump(by_alias=False)
        if not _exists(conn, "products", body.product_id, tenant_id=user.tenant_id):
            raise invalid("productId", "no such product in this tenant")
        check_references(conn, user.tenant_id, body.product_id, values)
        row = {"tenant_id": user.tenant_id, "created_by": user.id, **values}
        return _write(conn, kind, lambda: insert_row(conn, kind.table, row))

    def update_item(body: Update, user: Writer, conn: DbConn, item_id: ItemId) -> dict[str, Any]:
        current = get_item(user, conn, item_id)
        values = body.model_dump(by_alias=False, exclude_unset=True)
        check_references(conn, user.tenant_id, current["product_id"], values, item_id=item_id)
        row = _write(conn, kind,
                     lambda: update_row(conn, kind.table, user.tenant_id, item_id, values))
        if row is None:  # deleted by another session since it was read above
            raise _missing(kind)
        return row

    router.add_api_route(path, list_items, methods=["GET"], response_model=list[Out],
                         summary=f"List {kind.table}", tags=[kind.table])
    router.add_api_route(f"{path}/{{item_id}}", get_item, methods=["GET"],
                         response_model=Out, responses=not_found,
                         summary=f"Get one {kind.name}", tags=[kind.table])
    router.add_api_route(path, create_item, methods=["POST"], response_model=Out,
                         status_code=201, summary=f"Create {kind.name}", tags=[kind.table],
                         responses={409: {"model": m.ErrorOut,
                                          "description": "Duplicate external id"}})
    router.add_api_route(f"{path}/{{item_id}}", update_item, methods=["PATCH"],
                         response_model=Out, responses=not_found,
                         summary=f"Update {kind.name}", tags=[kind.table])


router = APIRouter()
for _kind in KINDS:
    add_routes(router, _kind)
