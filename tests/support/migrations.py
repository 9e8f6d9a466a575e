"""Schema revisions for the tests of old backups: the first revision (the one the backups in
tests/fixtures/backups were made at) and head, and a database left at a revision."""

from __future__ import annotations

from pathlib import Path

from ops.core.config import PROJECT_ROOT, Settings
from ops.core.db import connection
from ops.core.guard import record_environment
from ops.schema.migrate import known_revisions, upgrade_in_transaction

OLD_BACKUPS = PROJECT_ROOT / "tests" / "fixtures" / "backups"
_REVISIONS = known_revisions(Settings(database_url="", backup_dir=Path(".")))
FIRST = "0001"
HEAD = _REVISIONS[-1]


def migrate_to(settings: Settings, revision: str) -> None:
    """Bring the database of `settings` to `revision`, recording the environment marker as
    `push` does."""
    with connection(settings) as conn:
        upgrade_in_transaction(conn, settings, revision)
        record_environment(conn, settings, allow_production=False)
        conn.commit()
