"""`verify` and `backups`: is a backup file whole, and what does BACKUP_DIR hold?

Verification streams the file through `ops.backup_reader` (the same reader restore uses, so
"verifies" means "restore will read it") without decoding rows: structure, per-table row
counts and sha256 against meta. Files without meta (the seed tool's) verify for structure
only, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ops.backup_files import BackupFile, list_backups, looks_complete
from ops.backup_format import read_meta
from ops.backup_reader import LINES, BackupReader
from ops.errors import OpsError

CHECKED_FULL = "structure, row counts and sha256 against meta"
CHECKED_COUNTS = "structure and row counts against meta"
CHECKED_STRUCTURE = "structure only (no meta: not written by tasklets-db)"


@dataclass
class VerifyResult:
    path: Path
    ok: bool
    checked: str = ""
    compressed: bool = False
    timestamp: str | None = None
    tables: dict[str, int] = field(default_factory=dict)  # rows found, in file order
    total_rows: int = 0
    problem: str | None = None  # one line naming the first bad table


def verify_backup(path: Path) -> VerifyResult:
    """Stream `path` and check it; problems are reported in the result, never raised."""
    result = VerifyResult(path=path, ok=False)
    try:
        with BackupReader(path, decode_rows=False) as reader:
            result.compressed = reader.compressed
            result.timestamp = reader.timestamp
            for section in reader.sections():
                section.drain()
            result.tables = dict(reader.counts)
            result.total_rows = sum(reader.counts.values())
            if reader.verify_meta():
                _check_meta_lists_every_table(reader.meta or {}, reader.counts)
                result.checked = CHECKED_FULL if reader.layout == LINES else CHECKED_COUNTS
            else:
                result.checked = CHECKED_STRUCTURE
    except OpsError as exc:  # the reader words it for restore; nothing is changed here anyway
        result.problem = exc.message.removeprefix(f"bad backup {path.name}: ").removesuffix(
            "; nothing was changed")
        return result
    except OSError as exc:
        result.problem = f"cannot read {path}: {exc.strerror or exc}"
        return result
    result.ok = True
    return result


def _check_meta_lists_every_table(meta: dict, counts: dict[str, int]) -> None:
    """The reader checks meta's tables against the file; this checks the other direction."""
    listed = meta.get("rowCounts")
    if not isinstance(listed, dict):
        raise OpsError("meta has no rowCounts")
    for name in counts:
        if name not in listed:
            raise OpsError(f"table {name!r} is in the file but not in meta (edited?)")
    total = meta.get("totalRows")
    if isinstance(total, int) and total != sum(counts.values()):
        raise OpsError(f"meta says {total} rows in total, the file has {sum(counts.values())}")


@dataclass
class ListedBackup:
    name: str
    path: Path
    timestamp: str
    size_bytes: int
    compressed: bool
    safety: bool
    rows: int | None  # from meta; None for files without it
    status: str  # verified | complete | incomplete | BAD: <problem>
    problem: str | None = None


def describe_backups(backup_dir: Path, *, full_verify: bool = False) -> list[ListedBackup]:
    """Every backup in backup_dir, newest first, with a cheap completeness check (or a full
    `verify_backup` when full_verify)."""
    return [_describe(found, full_verify) for found in list_backups(backup_dir)]


def _describe(found: BackupFile, full_verify: bool) -> ListedBackup:
    meta = read_meta(found.path)
    rows = meta.get("totalRows") if meta else None
    problem = None
    if full_verify:
        checked = verify_backup(found.path)
        status = "verified" if checked.ok else "BAD"
        problem = checked.problem
        if checked.ok and not meta:
            status = "verified (structure only)"
        if rows is None and checked.ok:
            rows = checked.total_rows
    elif meta is not None:
        status = "complete"
    else:
        status = "complete (no meta)" if looks_complete(found.path) else "incomplete"
    return ListedBackup(
        name=found.name, path=found.path, timestamp=found.timestamp.isoformat(),
        size_bytes=found.size, compressed=found.compressed, safety=found.safety,
        rows=rows if isinstance(rows, int) else None, status=status, problem=problem,
    )
