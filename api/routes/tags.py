"""GET /api/tags[?name=] and POST /api/tags: the tenant's tags (for a client user, those on
work items it can see)."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query

from api.auth import Reader, Writer
from api.db import DbConn
from api.models import ErrorOut, NameQuery, TagCreate, TagOut
from api.queries import insert_row, select_rows
from ops.core.fields import MAX_ID

router = APIRouter(prefix="/tags", tags=["tags"])


@router.get("", response_model=list[TagOut])
def list_tags(user: Reader, conn: DbConn,
              name: Annotated[NameQuery | None, Query()] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[dict[str, Any]]:
    filters = {} if name is None else {"name": name}
    return select_rows(conn, "tags", user.scope, filters, limit=limit, offset=offset)


@router.post("", response_model=TagOut, status_code=201,
             responses={409: {"model": ErrorOut, "description": "A tag with that name exists"}})
def create_tag(body: TagCreate, user: Writer, conn: DbConn) -> dict[str, Any]:
    try:
        with conn.transaction():
            return insert_row(conn, "tags", {"tenant_id": user.tenant_id,
                                             **body.model_dump(by_alias=False)})
    except psycopg.errors.UniqueViolation:
        raise HTTPException(409, detail=f"tag {body.name!r} already exists") from None
