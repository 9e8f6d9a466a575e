"""One database connection per request, through `ops.core.db.connect` (same settings, same session
setup as the CLI). The request's work is one transaction: committed when the handler returns,
rolled back when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request

from ops.core.db import connect
from ops.core.errors import OpsError


class DatabaseUnavailable(Exception):
    """The database could not be reached: 503, detail in the server log only."""


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    try:
        conn = connect(request.app.state.settings.ops)
    except OpsError as exc:
        raise DatabaseUnavailable(exc.message) from None
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


# scope="function": commit before the response is sent, so a 2xx always means committed.
DbConn = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]
