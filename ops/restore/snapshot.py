"""`fresh --from SNAPSHOT` (`make db-fresh FROM=...`): a developer's database from an
anonymized snapshot of production instead of the sample seed.

Refuses a backup whose meta does not say `anonymized` (real people's data does not belong on
a laptop) unless told `--allow-real-data`, before anything is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.backup.archive import Archive
from ops.backup.encryption import identities_for
from ops.backup.reader import backup_meta
from ops.core.config import Settings
from ops.core.db import connection
from ops.core.errors import Refused
from ops.core.guard import refuse_production
from ops.core.output import SILENT, Reporter, suggest, suggest_flag
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.restore.apply import RestoreResult, restore
from ops.schema.migrate import PushResult, push


@dataclass
class SnapshotResult:
    source: str  # a path or an object URL
    anonymized: bool
    push: PushResult
    restore: RestoreResult


def fresh_from_snapshot(settings: Settings, source: str, *, identity: str | Path | None = None,
                        allow_real_data: bool = False, allow_production: bool = False,
                        safety_backup: bool = True, report: Reporter = SILENT
                        ) -> SnapshotResult:
    """push, then restore `source` (a name in BACKUP_DIR, a path or an object URL; `identity`
    decrypts it) if it is anonymized. `safety_backup=False` suits a database made for the
    purpose (a test template), whose empty tables need no copy."""
    archive = Archive.from_settings(settings)
    path = archive.resolve(source)
    identities = identities_for(settings, identity)
    # an encrypted snapshot is read through once for its meta: nothing is changed before
    # it is known to be anonymized
    anonymized = (backup_meta(path, identities) or {}).get("anonymized") is True
    if not anonymized and not allow_real_data:
        raise Refused(f"{path.name} is not an anonymized snapshot (its meta does not say "
                      "anonymized): it may hold real people's data; nothing was changed",
                      hint=f"Use a snapshot made by {suggest('backup --anonymize')}, or, if you "
                      f"may hold this data, {suggest_flag('--allow-real-data')}.")
    with connection(settings) as conn:  # before push, which rewrites the environment marker
        refuse_production(conn, settings, action="restore a snapshot into",
                          allow_production=allow_production)
    report.line(f"📸 Fresh database from {'anonymized snapshot' if anonymized else 'backup'} "
                f"{path.name}")
    pushed = push(settings, report)
    report.line("")
    restored = restore(settings, path, archive=archive, identity=identity,
                       safety_backup=safety_backup, allow_production=allow_production,
                       allow_anonymized=anonymized, report=report)
    report.line("")
    report.line(f"🎉 Database ready from {path.name}: schema at head, {restored.total_rows} "
                "rows restored.")
    if anonymized:
        report.line(f"🔑 Log in as any user with the sample password ({SAMPLE_PASSWORD}).")
    return SnapshotResult(str(path), anonymized, pushed, restored)
