"""Error responses: always `{"detail": ...}` JSON, never a stack trace or SQL.

Validation failures list the offending fields; database errors are mapped to what the
client can act on (409 conflict, 422 invalid value, refused item or a value over a database
limit, 503 database down) and anything else becomes a generic 500 whose details go to the
server log only.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.db import DatabaseUnavailable
from ops.core.errors import NotFound, OpsError, Refused
from ops.core.limits import summarize
from ops.core.masking import mask_secrets

MAX_FIELD_ERRORS = 100
log = logging.getLogger("api")


def field_errors(errors: Any) -> list[dict[str, str]]:
    """`{field, location, message}` per error; the input value is never echoed back."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else "body"
        field = ".".join(loc[1:] if loc and loc[0] == location else loc)
        out.append({"field": field or location, "location": location,
                    "message": str(error.get("msg", "invalid value"))})
    return out


def invalid(field: str, message: str, location: str = "body") -> RequestValidationError:
    """A 422 naming one field, for checks pydantic cannot do (references to other rows)."""
    return RequestValidationError([{"loc": (location, field), "msg": message,
                                    "type": "value_error"}])


def _json(code: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=code)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(exc.errors())
    names = summarize(list(dict.fromkeys(e["field"] for e in errors)))
    # A 20,000-item sync can fail every item: the first errors say enough.
    return _json(422, f"invalid request: {names}", errors=errors[:MAX_FIELD_ERRORS])


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    response = _json(exc.status_code, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
    log.error("database unavailable: %s", exc)
    return _json(503, "database unavailable")


# The ops error types, as HTTP: what is missing is 404, what the state of things refuses is
# 409, anything else wrong with the request (an invalid work item, a parent cycle) is 422.
OPS_STATUS = ((NotFound, 404), (Refused, 409))


async def _ops_error(request: Request, exc: OpsError) -> JSONResponse:
    """An error from shared ops code: its one line (and hint), no internals."""
    code = next((status for kind, status in OPS_STATUS if isinstance(exc, kind)), 422)
    return _json(code, mask_secrets(exc.message),
                 **({"hint": mask_secrets(exc.hint)} if exc.hint else {}))


async def _database(request: Request, exc: psycopg.Error) -> JSONResponse:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return _json(409, "conflicts with an existing record")
    # Class 54 (program_limit_exceeded: an index row, an array, a statement too large) is the
    # request's doing, not an outage; psycopg files it under OperationalError, whose 503
    # clients such as the importer retry.
    if (exc.sqlstate or "").startswith("54"):
        return _json(422, "a value is too large for the database")
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.DataError):
        return _json(422,
                     "invalid value for the database (out of range or not allowed)")
    if isinstance(exc, psycopg.OperationalError):
        log.error("database unavailable: %s", exc.__class__.__name__)
        return _json(503, "database unavailable")
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    # FastAPI's decorator, called directly: Starlette's add_exception_handler is typed for
    # handlers of any Exception, not of the one class each handler is registered for
    app.exception_handler(RequestValidationError)(_validation)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(DatabaseUnavailable)(_unavailable)
    app.exception_handler(OpsError)(_ops_error)
    app.exception_handler(psycopg.Error)(_database)
    app.exception_handler(Exception)(_unexpected)
