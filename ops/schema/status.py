"""`status`: what the target database holds and how it compares with the migrations."""

from __future__ import annotations

from dataclasses import dataclass, field

from ops.core.catalog import current_revision, discover_tables, row_counts
from ops.core.config import Settings
from ops.core.db import connect, server_version
from ops.core.guard import stored_environment
from ops.schema.migrate import head_revision


@dataclass
class Status:
    target: str
    server_version: str
    current_revision: str | None
    head_revision: str | None
    up_to_date: bool
    environment: str
    stored_environment: str | None
    tables: dict[str, int] = field(default_factory=dict)
    total_rows: int = 0


def database_status(settings: Settings) -> Status:
    with connect(settings) as conn:
        version = server_version(conn)
        current = current_revision(conn)
        marker = stored_environment(conn)
        counts = row_counts(conn, discover_tables(conn))
    head = head_revision(settings)
    return Status(
        target=settings.masked_url,
        server_version=version,
        current_revision=current,
        head_revision=head,
        up_to_date=current == head,
        environment=settings.app_env,
        stored_environment=marker,
        tables=counts,
        total_rows=sum(counts.values()),
    )
