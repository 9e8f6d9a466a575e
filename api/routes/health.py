"""GET /api/health: is the database reachable, and at which schema revision."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.models import HealthOut
from ops.core.catalog import current_revision
from ops.core.db import connection
from ops.core.errors import OpsError
from ops.schema.migrate import head_revision

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "Database unreachable"}})
def health(request: Request) -> HealthOut | JSONResponse:
    """No authentication: for load balancers and compose healthchecks."""
    settings = request.app.state.settings.ops
    head = head_revision(settings)
    try:
        with connection(settings, autocommit=True) as conn:
            revision = current_revision(conn)
    except OpsError:
        body = HealthOut(status="error", database="unreachable", head_revision=head)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    state = "ok" if revision == head else "schema-behind"
    return HealthOut(status=state, database="reachable", schema_revision=revision,
                     head_revision=head)
