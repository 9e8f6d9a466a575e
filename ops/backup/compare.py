"""`compare`: does the database hold exactly the data of a backup?

Every table of the database is serialised and hashed in one snapshot exactly as a backup
would be (`table_digests`, nothing is written anywhere), and its row counts and sha256 per
table are compared with the file's meta. Two backups of the same data have the same
checksums, on any PostgreSQL version, so this proves a restore (or a move to another server)
exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ops.backup.archive import Archive
from ops.backup.create import table_digests
from ops.backup.encryption import identities_for
from ops.backup.reader import backup_meta
from ops.core.catalog import current_revision
from ops.core.config import Settings
from ops.core.db import connection
from ops.core.errors import BadBackup, OpsError
from ops.core.output import SILENT, Reporter, suggest


@dataclass
class CompareResult:
    source: str  # the backup: a path or an object URL
    tables: dict[str, int] = field(default_factory=dict)  # rows in the database, per table
    differences: list[str] = field(default_factory=list)  # one line per difference
    total_rows: int = 0

    @property
    def matches(self) -> bool:
        return not self.differences


def compare_database(settings: Settings, source: str | Path | None = "latest", *,
                     archive: Archive | None = None, identity: str | Path | None = None,
                     report: Reporter = SILENT) -> CompareResult:
    """Compare the database with the backup `source` (in any store; `identity` decrypts
    it); an OpsError names the first difference."""
    archive = archive or Archive.from_settings(settings)
    path = archive.resolve(None if source is None else str(source))
    meta = backup_meta(path, identities_for(settings, identity))
    if not meta or not isinstance(meta.get("sha256"), dict) or not isinstance(
            meta.get("rowCounts"), dict):
        raise BadBackup(path.name, "it has no meta with row counts and checksums (not written "
                        "by tasklets-db), so there is nothing to compare it with",
                        hint=f"{suggest('verify')} checks its structure.")
    report.line(f"🔍 Comparing the database with {path}...")
    listed = meta.get("tables") if meta.get("partial") else None
    result = CompareResult(source=str(path))
    with connection(settings) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        revision = current_revision(conn)
        digests = table_digests(conn, listed)
        conn.rollback()
    result.tables = {name: rows for name, (rows, _) in digests.items()}
    result.total_rows = sum(result.tables.values())
    sha256 = {name: digest for name, (_, digest) in digests.items()}
    if meta.get("alembicRevision") != revision:
        result.differences.append(f"schema revision: the backup's is "
                                  f"{meta.get('alembicRevision')}, the database's {revision}")
    counts, sums = meta["rowCounts"], meta["sha256"]
    for name in [*result.tables, *(n for n in counts if n not in result.tables)]:
        difference = _difference(name, result.tables.get(name), sha256.get(name),
                                 counts.get(name), sums.get(name))
        if difference:
            result.differences.append(difference)
            report.line(f"❌ {difference}")
        else:
            report.line(f"✅ {name}: {counts[name]} rows, identical")
    if result.differences:
        more = len(result.differences) - 1
        raise OpsError(
            f"the database does not hold exactly the data of {path.name}: "
            f"{result.differences[0]}" + (f" (and {more} more difference(s))" if more else ""),
            hint=f"Restore that backup ({suggest('restore')}) or compare with the one you meant.")
    report.line(f"✅ The database holds exactly the backup's data: {len(result.tables)} "
                f"tables, {result.total_rows} rows, every sha256 equal")
    return result


def _difference(name: str, rows: int | None, digest: str | None, backup_rows: int | None,
                backup_digest: str | None) -> str | None:
    if backup_rows is None:
        return f"{name}: in the database ({rows} rows), not in the backup"
    if rows is None:
        return f"{name}: in the backup ({backup_rows} rows), not in the database"
    if rows != backup_rows:
        return f"{name}: {rows} rows in the database, {backup_rows} in the backup"
    if digest != backup_digest:
        return f"{name}: {rows} rows on both sides, but their data differs (sha256)"
    return None
