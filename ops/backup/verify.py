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

from ops.backup.archive import COMPLETE, INCOMPLETE, Archive, Facts
from ops.backup.files import BackupFile, Source, as_ref, is_encrypted_name, parse_backup_name
from ops.backup.format import JSON_NULL_KEY, column_keys, describe_partial, describe_tenant
from ops.backup.integrity import read_sidecar, stored_problem
from ops.backup.reader import LINES, BackupReader, FileProblem, Section
from ops.backup.verdicts import BAD, VERIFIED
from ops.core.errors import BadBackup, OpsError
from ops.core.limits import summarize
from ops.core.output import suggest

CHECKED_FULL = "structure, row counts and sha256 against meta"
CHECKED_COUNTS = "structure and row counts against meta"
CHECKED_STRUCTURE = "structure only (no meta: not written by tasklets-db)"
CHECKED_AND_STORED = "; stored bytes against its sidecar"
CHECKED_STORED = "stored bytes: length and sha256 against its sidecar (no identity to decrypt)"


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
    """Stream the backup and check it; problems are reported in the result, never raised.

    An encrypted backup without an identity is checked against its sidecar (the stored
    bytes' length and sha256, ops.backup.integrity); one without a sidecar either cannot be
    checked, the one error raised."""
    result = VerifyResult(location=str(source), ok=False)
    ref = as_ref(source)
    integrity = read_sidecar(ref)
    if is_encrypted_name(ref.name) and not identities:
        if integrity is None:
            raise OpsError(f"{ref.name} is encrypted, no identity was given and it has no "
                           "sidecar to check its stored bytes against",
                           hint="Set BACKUP_IDENTITY_FILE (or --identity) to verify it.")
        result.encrypted, result.checked = True, CHECKED_STORED
        try:
            result.problem = stored_problem(ref, integrity)
        except OpsError as exc:
            result.problem = exc.message
        result.ok = result.problem is None
        return result
    try:
        with BackupReader(source, identities=identities, integrity=integrity) as reader:
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
            if reader.stored is not None and integrity is not None:
                # what the rows' checksums do not cover (the meta line, the framing)
                result.problem = reader.stored.problem(integrity)
                if result.problem is not None:
                    return result
                result.checked += CHECKED_AND_STORED
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


def _check_fields_against_meta(meta: dict[str, Any] | None, fields: dict[str, frozenset[str] | None]
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


def _check_meta_lists_every_table(meta: dict[str, Any], counts: dict[str, int]) -> None:
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


def verify_and_record(archive: Archive, source: Source,
                      identities: Sequence[Any] = ()) -> VerifyResult:
    """`verify_backup`, and the verdict written beside the backup when it is one of the
    archive's (`.verified`, or `.bad` with the problem): what every command that verifies
    does, so that retention and `latest` know what was found."""
    result = verify_backup(source, identities)
    ref = as_ref(source)
    if ref.store is archive.store and parse_backup_name(ref.name) is not None:
        if result.ok:
            archive.record_verdict(ref, VERIFIED, checked=result.checked)
        else:
            archive.record_verdict(ref, BAD, problem=result.problem)
    return result


@dataclass
class ListedBackup:
    name: str
    location: str
    timestamp: str
    size_bytes: int
    compressed: bool
    encrypted: bool
    safety: bool
    rows: int | None  # from meta or the sidecar; None when neither says
    status: str  # verified | complete | complete (not verified) | incomplete | encrypted | BAD
    problem: str | None = None
    partial: str | None = None  # "tables: a, b" / "without: c" for --tables/--exclude backups
    tenant: str | None = None  # "Acme (id 2)" for a backup of one tenant
    kind: str | None = None  # full, tenant, anonymized, partial, safety; None: unknown
    revision: str | None = None  # the schema revision it was taken at
    verdicts: list[str] = field(default_factory=list)  # verified, drilled, bad

    @property
    def good(self) -> bool:
        return self.status.startswith("verified")


def describe_backups(archive: Archive, *, full_verify: bool = False,
                     identities: Sequence[Any] = ()) -> list[ListedBackup]:
    """Every backup in the archive, newest first, with its kind, verdicts and a cheap
    completeness check (or, with full_verify, `verify_and_record`: a bad one gets its `.bad`
    verdict). An encrypted backup is described from its sidecar; without an identity a full
    verification checks its stored bytes against it."""
    listing = archive.listing()
    found = []
    for backup in listing.backups:
        facts = archive.facts(backup, listing)
        verdicts = sorted(listing.verdicts.of(backup.name))
        found.append(_describe(archive, backup, facts, verdicts, full_verify, identities))
    return found


def _describe(archive: Archive, found: BackupFile, facts: Facts, verdicts: list[str],
              full_verify: bool, identities: Sequence[Any]) -> ListedBackup:
    rows = facts.rows
    problem = None
    if full_verify and found.encrypted and not identities and facts.integrity is None:
        status = "encrypted (set BACKUP_IDENTITY_FILE to verify)"
    elif full_verify:
        checked = verify_and_record(archive, found.ref, identities)
        status = "verified" if checked.ok else "BAD"
        problem = checked.problem
        if checked.ok and checked.checked == CHECKED_STRUCTURE:
            status = "verified (structure only)"
        elif checked.ok and checked.checked == CHECKED_STORED:
            status = "verified (stored bytes)"
        if rows is None and checked.ok and not checked.encrypted:
            rows = checked.total_rows
        verdicts = sorted({*verdicts, VERIFIED if checked.ok else BAD})
    elif BAD in verdicts:
        status = "BAD (failed verification)"
    elif facts.completeness == INCOMPLETE:
        status = "incomplete"
    elif facts.completeness != COMPLETE:
        status = "encrypted (completeness unknown: no sidecar)"
    elif VERIFIED in verdicts or "drilled" in verdicts:
        status = "verified"
    elif facts.meta is None and facts.integrity is None:
        status = "complete (no meta)"
    else:
        status = "complete (not verified)"
    return ListedBackup(
        name=found.name, location=str(found.ref), timestamp=found.timestamp.isoformat(),
        size_bytes=found.size, compressed=found.compressed, encrypted=found.encrypted,
        safety=found.safety, rows=rows, status=status, problem=problem,
        partial=describe_partial(facts.meta) if facts.meta else None,
        tenant=describe_tenant({"tenant": facts.tenant}), kind=facts.kind,
        revision=facts.revision, verdicts=verdicts)


def bad_backup_error(listed: list[ListedBackup]) -> OpsError | None:
    """The one-line failure `backups --verify` ends with when any backup is bad."""
    bad = [b for b in listed if b.status == "BAD"]
    if not bad:
        return None
    return OpsError(f"{len(bad)} backup(s) failed verification: {bad[0].name}: "
                    f"{bad[0].problem}" + (" (and more)" if len(bad) > 1 else ""),
                    hint="Each got a .bad verdict: `latest` and retention pass over it. "
                    f"{suggest('backups')} shows the rest.")
