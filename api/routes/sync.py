"""POST /api/products/{id}/work-items/sync: the bulk upsert behind `import beads --via api`.

The handler runs the SAME writer as the direct import (`ops.workitems.sync`) inside the
request's transaction; parsing and mapping stay in the client. Each request commits on its
own, and the writer is idempotent, so a client that failed midway just sends everything
again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.auth import Writer
from api.db import DbConn
from api.models import ErrorOut, SyncRequest
from api.queries import select_one
from ops.core.fields import MAX_ID
from ops.workitems.dependencies import sync_dependencies
from ops.workitems.model import SyncResult, WorkItem
from ops.workitems.sync import sync_work_items

router = APIRouter(tags=["sync"])


@router.post("/products/{product_id}/work-items/sync", response_model=SyncResult,
             responses={404: {"model": ErrorOut, "description": "No such product"},
                        422: {"model": ErrorOut, "description": "Invalid items"}})
def sync_items(body: SyncRequest, user: Writer, conn: DbConn,
               product_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> SyncResult:
    """Upsert WorkItems (parents first, keyed by externalSource + externalId).

    Send every chunk with `phase: items`, then every chunk again with
    `phase: dependencies`. `dryRun` rolls this request back after counting. Only internal
    admins (the importer) may set `createdBy`, `createdAt` and comment authors and times;
    for other writers the caller is recorded and the database's clock is used.
    """
    if select_one(conn, "products", user.scope, product_id) is None:
        raise HTTPException(404, detail="product not found")
    items = body.items
    if not user.is_importer:
        for item in items:
            record_caller_as_author(item, user.email)
    tenant_id = user.tenant_id
    result = SyncResult()
    with conn.transaction(force_rollback=body.dry_run):
        if body.phase in ("items", "all"):
            result.merge(sync_work_items(conn, tenant_id=tenant_id, product_id=product_id,
                                         items=items))
        if body.phase in ("dependencies", "all"):
            result.merge(sync_dependencies(conn, tenant_id=tenant_id, product_id=product_id,
                                           items=items))
    return result


def record_caller_as_author(item: WorkItem, email: str) -> None:
    """Authorship the caller may not claim for others: the caller made the item and its
    comments, now. Comments stay deduplicated (on author and text when there is no time)."""
    item.created_by = email
    item.created_at = None
    for comment in item.comments:
        comment.author = email
        comment.created_at = None
