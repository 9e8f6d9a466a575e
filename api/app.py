"""The FastAPI application factory: routes under /api, OpenAPI at /docs, JSON errors."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api.auth import refuse_weak_key_at_startup
from api.config import ApiSettings
from api.errors import install_error_handlers
from api.gate import RequestGate
from api.models import ErrorOut, ValidationErrorOut
from api.routes import auth, health, products, sync, tags, work_items
from api.throttle import LoginThrottle


def create_app(settings: ApiSettings) -> FastAPI:
    """The app; raises OpsError when its SECRET_KEY is unfit for a production target."""
    refuse_weak_key_at_startup(settings)
    app = FastAPI(
        title="Tasklets API",
        version="1.0.0",
        description="Reference REST API over the Tasklets database: log in with "
        "POST /api/auth/login, then send `Authorization: Bearer <token>`. Every request "
        "sees only the token's tenant; only internal admin/developer users write.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle()
    install_error_handlers(app)
    app.add_middleware(RequestGate, secret_key=settings.secret_key)
    api = APIRouter(prefix="/api", responses={
        401: {"model": ErrorOut, "description": "Missing, invalid or expired token"},
        413: {"model": ErrorOut, "description": "Request body over this endpoint's limit"},
        422: {"model": ValidationErrorOut, "description": "Invalid request: the fields named"},
        503: {"model": ErrorOut, "description": "Database unavailable, or the server's "
                                                "SECRET_KEY unfit for a production database"},
    })
    for module in (auth, products, tags, work_items, sync):
        api.include_router(module.router)
    app.include_router(health.router, prefix="/api")  # no auth, no body: no 401/422
    app.include_router(api)
    return app
