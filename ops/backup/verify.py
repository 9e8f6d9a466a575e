"""`verify` and `backups`: is a backup file whole, and what does BACKUP_DIR hold?

Verification streams the file through `ops.backup.reader`, the same reader and the same
parsing restore uses, so "verifies" means "restore will read it": structure, every row parsed
as restore parses it and shaped alike (an object with the table's fields), per-table row
counts and sha256 against meta. Files without meta (the seed tool's) verify for structure and
rows only, and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.backup.files import (
    BackupFile,
    Location,
    Source,
    list_backups,
    looks_complete,
    read_meta,
)
from ops.backup.format import JSON_NULL_KEY, column_keys, describe_partial, describe_tenant
from ops.backup.reader import LINES, BackupReader, FileProblem, Section
from ops.core.errors import BadBackup
from ops.core.limits import summarize

CHECKED_FULL = "structure, row counts and sha256 against meta"
CHECKED_COUNTS = "structure and row counts against meta"
CHECKED_STRUCTURE = "structure only (no meta: not written by tasklets-db)"


@dataclass
class VerifyResult:
    location: str
    ok: bool
    checked: str = ""
    compressed: bool = False
    encrypted: bool = False
    timestamp: str | None = None
    tables: dict[str, int] = field(default_factory=dict)  # rows found, in file order
    total_rows: int = 0
    problem: str | None = None  # one line naming the first bad table


def verify_backup(source: Source, identities: Sequence[Any] = ()) -> VerifyResult:
    """Stream the backup and check it; problems are reported in the result, never raised
    (an encrypted backup without an identity is the one error: it cannot be checked)."""
    result = VerifyResult(location=str(source), ok=False)
    try:
        with BackupReader(source, identities=identities) as reader:
            result.compressed = reader.compressed
            result.encrypted = reader.encrypted
            result.timestamp = reader.timestamp
            fields: dict[str, frozenset[str] | None] = {}
            shape_problem: FileProblem | None = None  # reported after the checksums, which
            for section in reader.sections():         # say more when the file was modified
                try:
                    fields[section.name] = _check_rows(section)
                except FileProblem as exc:
                    shape_problem = shape_problem or exc
            result.tables = dict(reader.counts)
            result.total_rows = sum(reader.counts.values())
            checked_meta = reader.verify_meta()
            if shape_problem is not None:
                raise shape_problem
            _check_fields_against_meta(reader.meta, fields)
            if checked_meta:
                _check_meta_lists_every_table(reader.meta or {}, reader.counts)
                result.checked = CHECKED_FULL if reader.layout == LINES else CHECKED_COUNTS
            else:
                result.checked = CHECKED_STRUCTURE
    except BadBackup as exc:
        result.problem = exc.detail
        return result
    except FileProblem as exc:  # found by the checks below, which say what and where
        result.problem = exc.what
        return result
    except OSError as exc:
        result.problem = f"cannot read {source}: {exc.strerror or exc}"
        return result
    result.ok = True
    return result


def _check_rows(section: Section) -> frozenset[str] | None:
    """Every row an object with the same fields as the first; returns those fields."""
    fields: frozenset[str] | None = None
    for row_no, line_no, row in section.rows:
        where = f"table {section.name!r} row {row_no}" + (f" (line {line_no})" if line_no else "")
        if type(row) is not dict:
            raise FileProblem(f"{where} is not an object of field -> value")
        keys = frozenset(row) - {JSON_NULL_KEY}
        if fields is None:
            fields = keys
        elif keys != fields:
            differ = sorted(keys ^ fields)
            raise FileProblem(f"{where} has other fields than the table's first row: "
                           f"{summarize(differ)}")
    return fields


def _check_fields_against_meta(meta: dict | None, fields: dict[str, frozenset[str] | None]
                               ) -> None:
    columns = (meta or {}).get("columns")
    if not isinstance(columns, dict):
        return
    for name, found in fields.items():
        listed = columns.get(name)
        if found is None or not isinstance(listed, list):
            continue
        expected = frozenset(column_keys(listed).values())
        if found != expected:
            raise FileProblem(f"table {name!r}: its rows' fields differ from the columns meta "
                           f"lists ({summarize(sorted(found ^ expected))})")


def _check_meta_lists_every_table(meta: dict, counts: dict[str, int]) -> None:
    """The reader checks meta's tables against the file; this checks the other direction."""
    listed = meta.get("rowCounts")
    if not isinstance(listed, dict):
        raise FileProblem("meta has no rowCounts")
    for name in counts:
        if name not in listed:
            raise FileProblem(f"table {name!r} is in the file but not in meta (edited?)")
    total = meta.get("totalRows")
    if isinstance(total, int) and total != sum(counts.values()):
        raise FileProblem(f"meta says {total} rows in total, the file has {sum(counts.values())}")


@dataclass
class ListedBackup:
    name: str
    location: str
    timestamp: str
    size_bytes: int
    compressed: bool
    encrypted: bool
    safety: bool
    rows: int | None  # from meta; None for files without it
    status: str  # verified | complete | incomplete | BAD: <problem>
    problem: str | None = None
    partial: str | None = None  # "tables: a, b" / "without: c" for --tables/--exclude backups
    tenant: str | None = None  # "Acme (id 2)" for a backup of one tenant


def describe_backups(location: Location, *, full_verify: bool = False,
                     identities: Sequence[Any] = ()) -> list[ListedBackup]:
    """Every backup in the store, newest first, with a cheap completeness check (or a full
    `verify_backup` when full_verify). Encrypted backups keep their meta inside the
    ciphertext: listed as `encrypted` unless fully verified with an identity."""
    return [_describe(found, full_verify, identities) for found in list_backups(location)]


def _describe(found: BackupFile, full_verify: bool, identities: Sequence[Any]) -> ListedBackup:
    meta = read_meta(found.ref, size=found.size)
    rows = meta.get("totalRows") if meta else None
    problem = None
    if full_verify and found.encrypted and not identities:
        status = "encrypted (set BACKUP_IDENTITY_FILE to verify)"
    elif full_verify:
        checked = verify_backup(found.ref, identities)
        status = "verified" if checked.ok else "BAD"
        problem = checked.problem
        if checked.ok and not meta:
            status = "verified (structure only)"
        if rows is None and checked.ok:
            rows = checked.total_rows
    elif found.encrypted:
        status = "encrypted"
    elif meta is not None:
        status = "complete"
    else:
        status = "complete (no meta)" if looks_complete(found.ref, size=found.size) \
            else "incomplete"
    return ListedBackup(
        name=found.name, location=str(found.ref), timestamp=found.timestamp.isoformat(),
        size_bytes=found.size, compressed=found.compressed, encrypted=found.encrypted,
        safety=found.safety,
        rows=rows if isinstance(rows, int) else None, status=status, problem=problem,
        partial=describe_partial(meta), tenant=describe_tenant(meta),
    )

