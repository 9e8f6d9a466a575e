"""Change segments: the database's committed transactions between two LSNs, stored beside the
backups (written by `capture`, read by `restore --at`, checked by `verify`).

    changes-{start:016X}-{end:016X}.jsonl.zst[.age]      + NAME.sum (size, sha256, range)

Content: zstd (then age when BACKUP_ENCRYPT_TO is set) of JSON lines: a header
({"format": "tasklets-changes", "version": 1, "startLsn", "endLsn", "alembicRevision",
"systemIdentifier", "database", "createdAt"}), one line per transaction ({"xid", "lsn",
"endLsn", "commitTime", "changes": [...]}) and a trailer ({"end": true, "transactions",
"changes", "sha256" of every preceding line}). A segment without its trailer is incomplete;
the store publishes it only once whole (a writer's commit), and the sidecar lets `verify`
check the stored bytes without the age identity.

Values are pgoutput's text form (None = NULL): replay lets PostgreSQL cast them, so every type
round-trips exactly as the server prints it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, NamedTuple

import orjson

from ops.backup.archive import Archive
from ops.backup.compression import READ_ERRORS, ZSTD, decompressing, frame_writer
from ops.backup.encryption import decrypting_reader, encrypting_writer
from ops.backup.files import BackupRef, utc_now
from ops.backup.integrity import (
    HashingWriter,
    Integrity,
    StoredBytesTap,
    read_sidecar,
    stored_problem,
    write_sidecar,
)
from ops.backup.segment_files import (
    SEGMENT_KIND,
    SegmentInfo,
    commit_time,
    lsn_text,
    parse_lsn,
    parse_segment_name,
    segment_name,
)
from ops.backup.storage.interface import ObjectExistsError
from ops.core.errors import BadBackup, BadSegment, OpsError

__all__ = [
    "Change", "Encoded", "Origin", "SegmentInfo", "Transaction", "encode", "lsn_text",
    "parse_lsn", "read_segment", "parse_segment_name", "segment_name", "verify_segment",
    "write_segment", "segment_facts",
]

FORMAT = "tasklets-changes"
VERSION = 1
# One transaction is one line: a line longer than this is refused rather than read into memory
# (the capture service flushes long before; a bigger transaction is a bulk load that a backup
# should carry instead).
MAX_LINE = 256 << 20
WRITE_CHUNK = 1 << 20  # lines are compressed and hashed this many bytes at a time


class Change(NamedTuple):
    """One row change, values in PostgreSQL's text form (None = NULL). A tuple: replay reads
    hundreds of thousands a second, and a frozen dataclass costs several times as much to
    make."""

    op: str  # insert | update | delete | truncate
    table: str
    row: dict[str, str | None] | None = None  # new values (insert, update)
    key: dict[str, str | None] | None = None  # old key (update that changed it, delete)
    unchanged: tuple[str, ...] = ()  # TOASTed columns an UPDATE did not send: keep current


@dataclass(frozen=True)
class Transaction:
    xid: int  # 32-bit, from pgoutput's Begin
    lsn: int  # commit LSN
    end_lsn: int
    commit_time: datetime  # UTC, aware
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Encoded:
    """A transaction as its segment line: what capture holds until the segment is written
    (a few times smaller than its changes as Python objects)."""

    xid: int
    lsn: int
    end_lsn: int
    commit_time: datetime
    change_count: int
    line: bytes


def encode(tx: Transaction) -> Encoded:
    return Encoded(tx.xid, tx.lsn, tx.end_lsn, tx.commit_time, len(tx.changes),
                   transaction_line(tx))


@dataclass(frozen=True)
class Origin:
    """The database the changes came from (a segment is refused against another one)."""

    system_identifier: str  # "" where the server hides it
    database: str

    @classmethod
    def of_backup(cls, capture: dict[str, Any] | None) -> Origin | None:
        """The database a backup's capture facts name (None: a backup that records none)."""
        database = (capture or {}).get("database")
        if not isinstance(database, str):
            return None
        system = (capture or {}).get("systemIdentifier")
        return cls(system if isinstance(system, str) else "", database)

    def same(self, other: Origin) -> bool:
        """Whether both name one database (an identifier hidden on either side: by name)."""
        return self.database == other.database and (
            not self.system_identifier or not other.system_identifier
            or self.system_identifier == other.system_identifier)

    def __str__(self) -> str:
        return f"database {self.database} of cluster {self.system_identifier or '(hidden)'}"


# --- writing ------------------------------------------------------------------------------


def _change_json(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"op": change.op, "table": change.table}
    if change.op == "insert":
        out["row"] = change.row
    elif change.op == "update":
        out["key"] = change.key
        out["row"] = change.row
        if change.unchanged:
            out["unchanged"] = list(change.unchanged)
    elif change.op == "delete":
        out["key"] = change.key
    return out


def transaction_line(tx: Transaction) -> bytes:
    return orjson.dumps({
        "xid": tx.xid, "lsn": lsn_text(tx.lsn), "endLsn": lsn_text(tx.end_lsn),
        "commitTime": tx.commit_time.astimezone(UTC).isoformat(timespec="microseconds"),
        "changes": [_change_json(c) for c in tx.changes]}) + b"\n"


def write_segment(archive: Archive, transactions: Iterable[Transaction | Encoded], *,
                  start_lsn: int, end_lsn: int, revision: str | None, origin: Origin,
                  recipients: Sequence[Any] = (),
                  complete_until: datetime | None = None) -> SegmentInfo:
    """Store the transactions as one segment, atomically (published whole or not at all),
    then its sidecar. `complete_until`: the moment up to which the caller knows it has every
    committed change (a quiet database is covered past its last commit).

    A segment of the same range that is stored already (a capture killed after storing it,
    before advancing its slot) is kept as it is: its info is returned."""
    name = segment_name(start_lsn, end_lsn, encrypted=bool(recipients))
    ref = BackupRef(archive.store, name)
    header = {"format": FORMAT, "version": VERSION, "startLsn": lsn_text(start_lsn),
              "endLsn": lsn_text(end_lsn), "alembicRevision": revision,
              "systemIdentifier": origin.system_identifier, "database": origin.database,
              "createdAt": utc_now().isoformat(timespec="microseconds")}
    digest = hashlib.sha256()
    count = changes = 0
    first: datetime | None = None
    last: datetime | None = None
    try:
        with archive.store.open_writer(name) as raw:
            stored = HashingWriter(raw)
            sink: Any = encrypting_writer(stored, recipients) if recipients else stored
            try:
                packer = frame_writer(ZSTD, sink)
                line = orjson.dumps(header) + b"\n"
                packer.write(line)
                digest.update(line)
                previous = start_lsn
                chunk: list[bytes] = []
                chunk_size = 0
                for given in transactions:
                    tx = given if isinstance(given, Encoded) else encode(given)
                    if not start_lsn < tx.end_lsn <= end_lsn or tx.lsn < previous:
                        raise ValueError(f"transaction {tx.xid} at {lsn_text(tx.lsn)} is "
                                         f"outside or out of order in {name}")
                    previous = tx.lsn
                    line = tx.line
                    if len(line) > MAX_LINE:
                        raise OpsError(f"transaction {tx.xid} is {len(line)} bytes of "
                                       f"changes; a segment line holds at most {MAX_LINE}",
                                       hint="Take a full backup after bulk loads instead.")
                    chunk.append(line)
                    chunk_size += len(line)
                    if chunk_size >= WRITE_CHUNK:
                        _write_lines(packer, digest, chunk)
                        chunk, chunk_size = [], 0
                    count += 1
                    changes += tx.change_count
                    # the range of commit stamps, which log order need not follow (a
                    # commit is stamped before its record is written)
                    moment = tx.commit_time
                    first = moment if first is None or moment < first else first
                    last = moment if last is None or moment > last else last
                _write_lines(packer, digest, chunk)
                packer.write(orjson.dumps({"end": True, "transactions": count,
                                           "changes": changes,
                                           "sha256": digest.hexdigest()}) + b"\n")
                packer.close()
                if sink is not stored:
                    sink.close()
            except BaseException:
                if sink is not stored:
                    sink.abort()
                raise
            size = raw.commit()
    except ObjectExistsError:
        if read_sidecar(ref) is None:  # stored by a run killed before it wrote the sidecar:
            # the same range holds the same transactions; the stored bytes are hashed again
            size, sha256 = _stored_digest(ref)
            write_sidecar(ref, Integrity(size, sha256, SEGMENT_KIND, None, revision, None,
                                         _facts(start_lsn, end_lsn, first, last,
                                                complete_until, count, changes)))
        return segment_facts(archive, SegmentInfo(name, start_lsn, end_lsn,
                                                   encrypted=bool(recipients)))
    facts = _facts(start_lsn, end_lsn, first, last, complete_until, count, changes)
    write_sidecar(ref, Integrity(size, stored.digest.hexdigest(), SEGMENT_KIND, None,
                                 revision, None, facts))
    return SegmentInfo(name, start_lsn, end_lsn, first, last, bool(recipients), size, count,
                       revision, commit_time(facts["completeUntil"]))


def _facts(start_lsn: int, end_lsn: int, first: datetime | None, last: datetime | None,
           complete_until: datetime | None, count: int, changes: int) -> dict[str, Any]:
    """What a segment's sidecar says of its content."""
    known = [moment for moment in (complete_until, last) if moment is not None]
    until = max(known) if known else None
    return {"startLsn": lsn_text(start_lsn), "endLsn": lsn_text(end_lsn),
            "firstCommit": _iso(first), "lastCommit": _iso(last),
            "completeUntil": _iso(until), "transactions": count, "changes": changes}


def _stored_digest(ref: BackupRef) -> tuple[int, str]:
    """The size and sha256 of the object stored under `ref`."""
    digest = hashlib.sha256()
    size = 0
    with ref.open() as fh:
        while block := fh.read(WRITE_CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _write_lines(packer: Any, digest: Any, lines: list[bytes]) -> None:
    """Compress and hash lines together: one call per line cost more than compressing."""
    block = b"".join(lines)
    packer.write(block)
    digest.update(block)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def segment_facts(archive: Archive, info: SegmentInfo) -> SegmentInfo:
    """`info` with what its sidecar says (commit range, counts, revision)."""
    return archive.segment_facts(info)


# --- reading ------------------------------------------------------------------------------


def read_segment(archive: Archive, info: SegmentInfo, *, identities: Sequence[Any] = (),
                 revision: str | None = None,
                 origin: Origin | None = None) -> Iterator[Transaction]:
    """The segment's transactions in order, streamed (one line in memory at a time).

    Raises BadSegment naming it when it is damaged, truncated (no trailer), not the range its
    name says, or (with `revision`, `origin`) written at another schema revision or by another
    database — possibly after yielding earlier transactions, so callers apply inside a
    transaction they roll back."""
    try:
        with _Opened(archive, info, identities) as (fh, tap):
            yield from _transactions(fh, info, revision, origin)
            if tap is not None:
                problem = tap.problem(tap.integrity)
                if problem is not None:
                    raise BadSegment(info.name, problem)
    except BadBackup as exc:  # the age layer's words for damage: said of this segment
        raise BadSegment(info.name, exc.detail, exc.hint) from None


class _Opened:
    def __init__(self, archive: Archive, info: SegmentInfo, identities: Sequence[Any]) -> None:
        self.archive, self.info, self.identities = archive, info, identities
        self.closers: list[BinaryIO] = []

    def __enter__(self) -> tuple[BinaryIO, _Tap | None]:
        ref = BackupRef(self.archive.store, self.info.name)
        integrity = read_sidecar(ref)
        try:
            raw: Any = ref.open()
        except OpsError as exc:
            raise BadSegment(self.info.name, f"cannot be read: {exc.message}") from None
        tap = _Tap(raw, integrity) if integrity is not None else None
        stream: Any = tap if tap is not None else raw
        self.closers.append(stream)
        if self.info.encrypted:
            stream = decrypting_reader(stream, self.identities, what=self.info.name)
            self.closers.append(stream)
        plain = decompressing(stream, ZSTD)
        self.closers.append(plain)
        return plain, tap

    def __exit__(self, *exc: object) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(OSError, ValueError, OpsError):
                closer.close()



class _Tap(StoredBytesTap):
    def __init__(self, raw: Any, integrity: Integrity) -> None:
        super().__init__(raw)
        self.integrity = integrity


def _transactions(fh: BinaryIO, info: SegmentInfo, revision: str | None,
                  origin: Origin | None) -> Iterator[Transaction]:
    bad = _bad(info)
    digest = hashlib.sha256()
    lines = _lines(fh, info)
    line = next(lines, None)
    if line is None:
        raise bad("it is empty")
    header = _loads(line, bad, "its header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise bad("not a change segment (no tasklets-changes header)")
    if header.get("version") != VERSION:
        raise bad(f"format version {header.get('version')!r}; this tool reads {VERSION}",
                  "Upgrade tasklets-db to read it.")
    try:
        start, end = parse_lsn(header["startLsn"]), parse_lsn(header["endLsn"])
    except (KeyError, ValueError):
        raise bad("its header has no valid LSN range") from None
    if (start, end) != (info.start_lsn, info.end_lsn):
        raise bad(f"it holds {lsn_text(start)}..{lsn_text(end)}, not the range its name says")
    if origin is not None:
        writer = Origin(_str(header.get("systemIdentifier")) or "",
                        _str(header.get("database")) or "")
        if not origin.same(writer):
            raise BadSegment(info.name, f"written by {writer}, not the backup's {origin}",
                             hint="A store holds one database's changes: move the other "
                             "database's segments out of it, or give each its own BACKUP_DIR.")
    found_revision = _str(header.get("alembicRevision"))
    if revision is not None and found_revision != revision:
        raise BadSegment(info.name, f"written at schema revision {found_revision}, not "
                         f"{revision}: replay would cross a migration",
                         hint="Restore to a time after the backup taken after that migration.")
    digest.update(line)
    changes = 0
    previous = start
    for count, line in enumerate(lines):  # count: the transactions read before this line
        item = _loads(line, bad, f"transaction {count + 1}")
        if isinstance(item, dict) and item.get("end") is True:
            if count != item.get("transactions") or changes != item.get("changes"):
                raise bad(f"its trailer counts {item.get('transactions')} transactions, "
                          f"{count} were read")
            if digest.hexdigest() != item.get("sha256"):
                raise bad("its content differs from what was written (sha256 mismatch)")
            if next(lines, None) is not None:
                raise bad("data after its trailer")
            return
        tx = _transaction(item, bad, count + 1)
        if not start < tx.end_lsn <= end or tx.lsn < previous:
            raise bad(f"transaction {tx.xid} at {lsn_text(tx.lsn)} is outside or out of order")
        previous = tx.lsn
        digest.update(line)
        changes += len(tx.changes)
        yield tx
    raise bad("it has no trailer (truncated or incomplete)")


def _lines(fh: BinaryIO, info: SegmentInfo) -> Iterator[bytes]:
    try:
        while line := fh.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE or not line.endswith(b"\n"):
                if len(line) > MAX_LINE:
                    raise BadSegment(info.name, f"a line longer than {MAX_LINE} bytes")
                raise BadSegment(info.name, "it ends inside a line (truncated)")
            yield line
    except READ_ERRORS as exc:
        raise BadSegment(info.name, f"damaged compressed data ({exc})") from None
    except OSError as exc:
        raise BadSegment(info.name, f"cannot be read: {exc}") from None


def _bad(info: SegmentInfo) -> Any:
    def make(detail: str, hint: str | None = None) -> BadSegment:
        return BadSegment(info.name, detail, hint)
    return make


def _loads(line: bytes, bad: Any, what: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        raise bad(f"{what} is not valid JSON") from None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _values(value: object) -> dict[str, str | None] | None:
    if value is None:
        return None
    if type(value) is not dict:  # (orjson's keys are always str)
        raise ValueError("values are not an object of text or null")
    for v in value.values():
        if v is not None and type(v) is not str:
            raise ValueError("values are not an object of text or null")
    return value


_NEEDS = {"insert": "row", "update": "row", "delete": "key", "truncate": None}


def _transaction(item: object, bad: Any, number: int) -> Transaction:
    try:
        if type(item) is not dict:
            raise ValueError("not an object")
        xid = item["xid"]
        if type(xid) is not int or not 0 <= xid < 1 << 32:
            raise ValueError("no 32-bit xid")
        moment = commit_time(item["commitTime"])
        if moment is None:
            raise ValueError("no commit time with a zone")
        changes = []
        for raw in item["changes"]:
            op, table = raw["op"], raw["table"]
            if op not in _NEEDS or type(table) is not str:
                raise ValueError(f"unknown change {op!r}")
            unchanged = raw.get("unchanged")
            if unchanged:
                if type(unchanged) is not list or not all(
                        type(c) is str for c in unchanged):
                    raise ValueError("unchanged is not a list of column names")
                unchanged = tuple(unchanged)
            change = Change(op, table, _values(raw.get("row")), _values(raw.get("key")),
                            unchanged or ())
            needs = _NEEDS[op]
            if needs is not None and getattr(change, needs) is None:
                raise ValueError(f"{'a' if op == 'delete' else 'an'} {op} without its {needs}")
            changes.append(change)
        return Transaction(xid, parse_lsn(item["lsn"]), parse_lsn(item["endLsn"]),
                           moment.astimezone(UTC), changes)
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"transaction line {number} is malformed ({exc})") from None


# --- checking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentCheck:
    name: str
    problem: str | None  # None: whole
    checked: str  # what was checked
    transactions: int = 0


def verify_segment(archive: Archive, info: SegmentInfo, *,
                   identities: Sequence[Any] = ()) -> SegmentCheck:
    """Check a segment: stored bytes against its sidecar, and, when it can be read (plain,
    or an identity given), every line, the trailer's counts and checksum. Never raises for a
    bad segment: the problem is in the result."""
    ref = BackupRef(archive.store, info.name)
    if info.encrypted and not identities:
        integrity = read_sidecar(ref)
        if integrity is None:
            return SegmentCheck(info.name, "encrypted, no identity and no sidecar: cannot be "
                                "checked", "nothing")
        try:
            problem = stored_problem(ref, integrity)
        except OpsError as exc:
            problem = exc.message
        return SegmentCheck(info.name, problem, "stored bytes against its sidecar")
    count = 0
    try:
        for _ in read_segment(archive, info, identities=identities):
            count += 1
    except BadSegment as exc:
        return SegmentCheck(info.name, exc.detail, "content", count)
    except OpsError as exc:
        return SegmentCheck(info.name, exc.message, "content", count)
    return SegmentCheck(info.name, None, "content, trailer checksum and sidecar", count)
