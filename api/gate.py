"""What a request must show before its body is read: a valid bearer token on authenticated
routes, and a body within its route's limit.

FastAPI reads and parses a request body before it runs any dependency, so `current_user`
alone would let an anonymous client make the server read (and parse) a large body before
the 401, and nothing would stop a 50 MB login. `RequestGate` answers both from the headers
(401; 413 for a Content-Length over the limit) and counts the bytes of a body without one
(chunked), answering 413 at the limit. `current_user` still loads the user.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import MISSING_TOKEN, TOKEN_REFUSED, verify_token

KB = 1024
MB = 1024 * KB
LOGIN_BODY_MAX = 8 * KB  # an email and a password, JSON-escaped
# The importer sends chunks of at most 8 MB (ops.beads.via_api.CHUNK_BYTES), with room to spare.
SYNC_BODY_MAX = 16 * MB
# Every other request: one work item at its field limits (ops.core.limits: 1 MB of text, 1 MB of
# metadata, labels) fits.
BODY_MAX = 4 * MB
LOGIN_PATH = "/api/auth/login"
PUBLIC_PATHS = frozenset({"/api/health", LOGIN_PATH})
SYNC_PATH = re.compile(r"/api/products/[^/]+/work-items/sync")


def body_limit(path: str) -> int:
    """The largest request body `path` accepts, in bytes."""
    if path == LOGIN_PATH:
        return LOGIN_BODY_MAX
    return SYNC_BODY_MAX if SYNC_PATH.fullmatch(path) else BODY_MAX


class RequestGate:
    """ASGI middleware: 401 for a request to an authenticated route (everything under /api/
    but PUBLIC_PATHS) without a validly signed, unexpired bearer token, and 413 for a body
    over `body_limit`, both before the body is read."""

    def __init__(self, app: ASGIApp, secret_key: str) -> None:
        self.app = app
        self.secret_key = secret_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        problem = self._token_problem(headers) if _needs_token(path) else None
        if problem:
            await _refuse(401, problem, scope, receive, send, {"WWW-Authenticate": "Bearer"})
            return
        limit = body_limit(path)
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            await _refuse(413, _too_large(limit), scope, receive, send)
            return
        await _with_body_cap(self.app, limit, scope, receive, send)

    def _token_problem(self, headers: dict[bytes, bytes]) -> str | None:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return MISSING_TOKEN
        return None if verify_token(self.secret_key, token.strip()) else TOKEN_REFUSED


async def _with_body_cap(app: ASGIApp, limit: int, scope: Scope, receive: Receive,
                         send: Send) -> None:
    """Run `app`; once the body read so far passes `limit`, answer 413 and tell the app the
    client left (it stops reading; whatever it answers then is dropped)."""
    received = 0
    started = refused = False

    async def capped_receive() -> Message:
        nonlocal received, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit and not started:
                refused = True
                await _refuse(413, _too_large(limit), scope, receive, send)
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message: Message) -> None:
        nonlocal started
        if refused:
            return
        started = started or message["type"] == "http.response.start"
        await send(message)

    await app(scope, capped_receive, guarded_send)


async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send,
                  headers: dict[str, str] | None = None) -> None:
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(
        scope, receive, send)


def _too_large(limit: int) -> str:
    return f"request body too large: this endpoint accepts at most {limit} bytes"


def _needs_token(path: str) -> bool:
    return path.startswith("/api/") and path not in PUBLIC_PATHS
