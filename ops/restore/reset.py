"""`reset`: empty every app table in one transaction, identities restarted; the schema stays."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ops.core.catalog import (
    LOCK_TIMEOUT,
    discover_tables,
    lock_wait_error,
    require_schema,
    row_counts,
    truncate_statement,
)
from ops.core.config import Settings
from ops.core.db import connect, first_line
from ops.core.errors import OpsError
from ops.core.guard import refuse_production, unconfirmed
from ops.core.output import SILENT, Reporter, suggest

# What to do with an emptied database: (what for, command) - rendered as the user runs things.
NEXT_STEPS = (
    ("bring back the latest backup", "restore latest"),
    ("or start over with the sample data", "fresh"),
    ("or import your beads issues", "import beads"),
)


def next_steps() -> tuple[str, ...]:
    return tuple(f"{why}: {suggest(cli)}" for why, cli in NEXT_STEPS)


@dataclass
class ResetResult:
    # rows each table held before: exact under --dry-run; a real reset does not count them
    # (a count scans every table, and reset must stay well under a second at any size)
    tables: dict[str, int | None] = field(default_factory=dict)
    total_rows: int | None = None
    dry_run: bool = False
    next_steps: tuple[str, ...] = field(default_factory=next_steps)


def reset(settings: Settings, *, confirm: bool = False, dry_run: bool = False,
          allow_production: bool = False, report: Reporter = SILENT) -> ResetResult:
    """Truncate every app table (never alembic_version/ops_metadata), atomically."""
    with connect(settings) as conn:
        if not confirm and not dry_run:
            raise unconfirmed(conn, settings, "reset deletes ALL data in every table",
                              allow_production=allow_production)
        tables = discover_tables(conn)
        require_schema(tables)
        if dry_run:
            counts = row_counts(conn, tables)
            conn.rollback()
            result = ResetResult(dict(counts), sum(counts.values()), dry_run)
            report.line(f"🔍 Dry run: reset would truncate {len(tables)} tables "
                        f"({result.total_rows} rows):")
            width = max(len(t.name) for t in tables)
            for t in tables:
                report.line(f"   {t.name:<{width}}  {counts[t.name]:>10} rows")
            report.line("Nothing was changed.")
            return result
        conn.rollback()
        result = ResetResult({t.name: None for t in tables})
        refuse_production(conn, settings, action="reset", allow_production=allow_production)
        report.line("🔄 Starting database reset...")
        report.line("⚠️  WARNING: This will DELETE all data!")
        report.line("🗑️  Truncating tables...")
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(LOCK_TIMEOUT)))
                conn.execute(truncate_statement(tables))
        except psycopg.errors.LockNotAvailable:
            raise lock_wait_error("reset failed") from None
        except psycopg.Error as exc:
            raise OpsError(f"reset failed, nothing was changed: {first_line(exc)}") from None
    for t in tables:
        report.line(f"✅ {t.name}")
    report.line("✅ Database reset completed!")
    report.line("")
    report.line("📋 Next steps:")
    for n, step in enumerate(result.next_steps, 1):
        report.line(f"   {n}. {step}")
    return result
