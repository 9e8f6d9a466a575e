"""The production guard: destructive commands refuse a production target unless told twice.

A target counts as production when APP_ENV says so for this run, or when the environment
marker stored in the database says so (like Rails' ar_internal_metadata), so a developer
whose shell points at the production URL by mistake is still stopped - whatever APP_ENV
they have, or have not, set. The marker lives in ops_metadata, which backup/restore never
copy between databases. This module is the only one that reads or writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ops.core.catalog import OPS_METADATA_TABLE
from ops.core.config import Settings
from ops.core.db import scalar
from ops.core.errors import Refused
from ops.core.output import suggest_flag

PRODUCTION = "production"
ENVIRONMENT_KEY = "environment"
# A database a restore drill may overwrite: set by the drill on the SCRATCH_DATABASE_URL
# database it restores into, so that data a drill left there (a killed drill) is its own.
SCRATCH_KEY = "scratch"
SCRATCH_VALUE = "restore drills overwrite this database"


def stored_environment(conn: psycopg.Connection) -> str | None:
    """The environment marker recorded in the database, if any."""
    return _stored(conn, ENVIRONMENT_KEY)


def is_scratch(conn: psycopg.Connection) -> bool:
    """Whether a restore drill marked the database as its scratch database."""
    return _stored(conn, SCRATCH_KEY) == SCRATCH_VALUE


def mark_scratch(conn: psycopg.Connection) -> None:
    """Mark the database (at head: ops_metadata exists) as a drill's scratch database."""
    _store(conn, SCRATCH_KEY, SCRATCH_VALUE)


def _store(conn: psycopg.Connection, key: str, value: str) -> None:
    conn.execute(
        f"INSERT INTO {OPS_METADATA_TABLE} (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        (key, value))


def _stored(conn: psycopg.Connection, key: str) -> str | None:
    exists = scalar(conn, "SELECT to_regclass(%s) IS NOT NULL",
                    (f"public.{OPS_METADATA_TABLE}",))
    if not exists:
        return None
    row = conn.execute(f"SELECT value FROM {OPS_METADATA_TABLE} WHERE key = %s",
                       (key,)).fetchone()
    return row[0] if row else None


@dataclass
class MarkerChange:
    before: str | None
    after: str | None
    kept_production: bool = False  # APP_ENV asked for less than production: refused


def record_environment(conn: psycopg.Connection, settings: Settings, *,
                       allow_production: bool = False) -> MarkerChange:
    """Store APP_ENV as the marker, inside the caller's transaction.

    A production marker is never downgraded implicitly: an unset or non-production APP_ENV
    keeps it, unless `allow_production` says the operator means it (Rails requires
    `db:environment:set` for the same reason).
    """
    before = stored_environment(conn)
    wanted = settings.app_env
    if before == PRODUCTION and wanted != PRODUCTION and not allow_production:
        return MarkerChange(before, before, kept_production=True)
    _store(conn, ENVIRONMENT_KEY, wanted)
    return MarkerChange(before, wanted)


def production_reasons(conn: psycopg.Connection, settings: Settings) -> list[str]:
    """Why this target is production (empty when it is not)."""
    reasons = []
    if settings.app_env == PRODUCTION:
        reasons.append("APP_ENV=production")
    if stored_environment(conn) == PRODUCTION:
        reasons.append("the database's environment marker says production")
    return reasons


def refuse_production(conn: psycopg.Connection, settings: Settings, *, action: str,
                      allow_production: bool, hint: str | None = None) -> None:
    """Raise (exit 2, nothing touched) when the target is production and not explicitly allowed
    (`hint`: how to allow it, when not with --allow-production)."""
    reasons = production_reasons(conn, settings)
    if reasons and not allow_production:
        raise Refused(
            f"refusing to {action} a production database ({'; '.join(reasons)}); "
            "nothing was changed",
            hint=hint or f"If you really mean to: {suggest_flag('--allow-production')}.",
        )


def unconfirmed(conn: psycopg.Connection, settings: Settings, message: str, *,
                allow_production: bool) -> Refused:
    """The refusal of a destructive run without --confirm. Its hint names everything the run
    needs (--allow-production too, on a production target), so that following it works."""
    needed = "--confirm"
    if not allow_production and production_reasons(conn, settings):
        needed += " --allow-production"
    return Refused(f"{message}; refusing without {needed} (nothing was changed)",
                   hint=f"Run {suggest_flag(needed)} (or {suggest_flag('--dry-run')} to see "
                   "what it would delete).")

