"""`tasklets-db testdb serve`: the pool over HTTP, for test runners in any language.

    POST   /templates         {"seeds": [...], "snapshot": null}   ensure a template (builds once
                                                                    per hash) -> its hash
    POST   /databases         {"template": HASH, "wait": 30}        a database of the caller's own
                                                                    -> name, url, hash,
                                                                    expires_in, cold
    DELETE /databases/NAME    [?recycle=true]                       give it back
    GET    /status                                                  templates, leases, counters
    GET    /health

Errors are `{"error": ..., "hint": ...}` with 400 (a bad request), 401 (token), 404 (no
such template or lease), 503 (the pool is exhausted) or 500. A token (TESTDB_TOKEN, sent as
`Authorization: Bearer ...`) is required whenever one is set, and one must be set to listen
beyond loopback: a database URL handed out carries the server role's password.
"""

from __future__ import annotations

import hmac
import ipaddress
import signal
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ops.core.config import Settings
from ops.core.db import target_description
from ops.core.errors import NotFound, OpsError, UsageError
from ops.core.output import SILENT, Reporter, to_json
from ops.testdb.admin import Strategy, open_admin
from ops.testdb.pool import Limits, Pool, PoolExhausted
from ops.testdb.recipe import Recipe

_STATUS: dict[type[OpsError], int] = {UsageError: 400, NotFound: 404, PoolExhausted: 503}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_token_beyond_loopback(host: str, token: str) -> None:
    if not is_loopback(host) and not token:
        raise UsageError(f"refusing to listen on {host} without a token: anyone who reaches "
                         "it would get database URLs with the server role's password",
                         hint="Set TESTDB_TOKEN (e.g. python -c \"import secrets; "
                         "print(secrets.token_urlsafe(32))\"), or listen on 127.0.0.1.")


class TemplateRequest(BaseModel):
    seeds: list[str] = Field(default_factory=list, max_length=50)
    snapshot: str | None = Field(default=None, max_length=4096)


class LeaseRequest(BaseModel):
    template: str | None = Field(default=None, max_length=64)
    wait: float = Field(default=30.0, ge=0, le=600)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(to_json(payload), status_code=status, media_type="application/json")


def create_app(pool: Pool, *, token: str = "") -> FastAPI:
    app = FastAPI(title="tasklets-db testdb", version="1",
                  description="Fresh, migrated, seeded PostgreSQL databases for tests.")

    def authorized(authorization: Annotated[str, Header()] = "") -> None:
        if token and not hmac.compare_digest(authorization.encode(),
                                             f"Bearer {token}".encode()):
            raise _Unauthorized

    @app.exception_handler(OpsError)
    async def _ops_error(request: Request, exc: OpsError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "missing or wrong token", "hint": "Send Authorization: "
                             "Bearer $TESTDB_TOKEN."}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)]

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/status", dependencies=guarded)
    def status() -> Response:
        return _json(pool.status())

    @app.post("/templates", dependencies=guarded)
    def ensure(body: TemplateRequest) -> Response:
        template = pool.ensure(Recipe.from_request(body.seeds, body.snapshot))
        return _json({"hash": template.hash, "name": template.name, "family": template.family,
                      "size_bytes": template.size, "built": template.built,
                      "seconds": template.seconds})

    @app.post("/databases", dependencies=guarded)
    def lease(body: LeaseRequest) -> Response:
        got = pool.lease(body.template, wait=body.wait)
        return _json({"name": got.name, "url": got.url, "hash": got.hash,
                      "expires_in": got.expires_in, "cold": got.cold})

    @app.delete("/databases/{name}", dependencies=guarded, status_code=204)
    def give_back(name: str, recycle: bool = False) -> Response:
        pool.give_back(name, recycle=recycle)
        return Response(status_code=204)

    return app


class _Unauthorized(Exception):
    pass


def advertised_url(url: str, host: str | None, port: int | None) -> str:
    """The server's URL as clients reach it (another host or port: the compose `db` seen from
    the host), with the same user, password and options."""
    if not host and not port:
        return url
    if not url.startswith("postgresql://"):
        from psycopg.conninfo import make_conninfo

        changes = {"host": host, "port": str(port) if port else None}
        return make_conninfo(url, **{k: v for k, v in changes.items() if v})
    parts = urlsplit(url)
    auth, _, location = parts.netloc.rpartition("@")
    old_host, old_port = (parts.hostname or ""), parts.port
    new_host = host or old_host
    if ":" in new_host:
        new_host = f"[{new_host}]"
    netloc = f"{new_host}:{port or old_port}" if (port or old_port) else new_host
    return urlunsplit(parts._replace(netloc=f"{auth}@{netloc}" if auth else netloc))


def serve(settings: Settings, *, host: str, port: int, recipe: Recipe, limits: Limits,
          token: str = "", strategy: Strategy | None = "file_copy",
          advertise_host: str | None = None, advertise_port: int | None = None,
          report: Reporter = SILENT) -> None:
    """Check, build the default template, then serve until stopped; at the end every database
    this server made is dropped (templates stay for the next start)."""
    import uvicorn

    require_token_beyond_loopback(host, token)
    admin = open_admin(settings, strategy=strategy)
    advertise = advertised_url(admin.settings.database_url, advertise_host, advertise_port)
    pool = Pool(admin, limits, advertise=advertise, report=report).start()
    try:
        template = pool.ensure(recipe)
        if not template.built:
            report.line(f"♻️  Template {template.hash} ({template.family}) reused")
        report.line(f"🧪 Test databases on http://{host}:{port} (pool {pool.owner.id}, "
                    f"{limits.ready} made ahead, server "
                    f"{target_description(admin.settings.database_url)})")
        # uvicorn stops gracefully on SIGTERM and then raises it again for the handler it
        # found: make that one an exit, so the pool's databases are dropped below
        signal.signal(signal.SIGTERM, _exit)
        uvicorn.run(create_app(pool, token=token), host=host, port=port, log_level="warning")
    finally:
        pool.close()
        report.line(f"👋 Stopped: dropped the databases of pool {pool.owner.id}")


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)
