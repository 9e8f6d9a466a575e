"""The production guard: destructive commands refuse a production target unless told twice.

A target counts as production when APP_ENV says so for this run, or when the environment
marker `push` stored in the database says so (like Rails' ar_internal_metadata), so a
developer whose shell points at the production URL by mistake is still stopped. The marker
lives in ops_metadata, which backup/restore never copy between databases.
"""

from __future__ import annotations

import psycopg

from ops.config import Settings
from ops.errors import OpsError
from ops.migrate import stored_environment

PRODUCTION = "production"


def production_reasons(conn: psycopg.Connection, settings: Settings) -> list[str]:
    """Why this target is production (empty when it is not)."""
    reasons = []
    if settings.app_env == PRODUCTION:
        reasons.append("APP_ENV=production")
    if stored_environment(conn) == PRODUCTION:
        reasons.append("the database's environment marker (set at push) says production")
    return reasons


def refuse_production(conn: psycopg.Connection, settings: Settings, *, action: str,
                      allow_production: bool) -> None:
    """Raise (exit 2, nothing touched) when the target is production and not explicitly allowed."""
    reasons = production_reasons(conn, settings)
    if reasons and not allow_production:
        raise OpsError(
            f"refusing to {action} a production database ({'; '.join(reasons)}); "
            "nothing was changed",
            hint="If you really mean to, add --allow-production.",
            exit_code=2,
        )
