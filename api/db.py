"""One database connection per request, through `ops.db.connect` (same settings, same session
setup as the CLI). The request's work is one transaction: committed when the handler returns,
rolled back when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg.rows import dict_row

from ops.db import connect


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    conn = connect(request.app.state.settings.ops)  # OpsError -> 503 by the error handlers
    conn.row_factory = dict_row
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
