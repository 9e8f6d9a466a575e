"""GET /api/products[?name=] and GET /api/products/{id}: the tenant's products (for a client
user, those its client licenses)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from api.auth import Reader
from api.db import DbConn
from api.models import NameQuery, ProductOut
from api.queries import select_one, select_rows
from ops.core.fields import MAX_ID

router = APIRouter(prefix="/products", tags=["products"])


@router.get("", response_model=list[ProductOut])
def list_products(user: Reader, conn: DbConn,
                  name: Annotated[NameQuery | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[dict[str, Any]]:
    """Products in your scope; `name` matches exactly, ignoring case."""
    filters = {} if name is None else {"name": name}
    return select_rows(conn, "products", user.scope, filters,
                       ignore_case=frozenset({"name"}), limit=limit, offset=offset)


@router.get("/{product_id}", response_model=ProductOut,
            responses={404: {"description": "No such product in your tenant"}})
def get_product(user: Reader, conn: DbConn,
                product_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    row = select_one(conn, "products", user.scope, product_id)
    if row is None:
        raise HTTPException(404, detail="product not found")
    return row
