"""Finding a backup file and reading it as a stream of tables and rows, in constant memory.

Two readers behind one interface:
- the line reader, for files laid out as `ops.backup_format` describes (one row per line):
  each row is one `json.loads`, and per-table sha256 / row counts are checked against meta;
- a streaming JSON parser (ijson) for every other layout of the same JSON, e.g. the seed
  tool's pretty-printed files (about 1.6x slower, still constant memory).
Numbers are parsed exactly (non-integers as Decimal, never float).

Every problem with the file becomes one OpsError naming the table, the row and (for the line
reader) the file line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson
from ijson.common import ObjectBuilder

from ops.backup_files import latest_complete_backup, list_backups
from ops.backup_format import SUPPORTED_VERSIONS, open_backup, parse_header, parse_table_open
from ops.errors import OpsError

LINES = "lines"
STREAMING = "streaming"

_HEADER_MAX = 64 * 1024  # our header line is short; a longer first line means another layout
_TAIL_MAX = 16 * 1024 * 1024  # what may follow the tables (meta) before we call it garbage
_TABLE_CLOSERS = frozenset({b"]", b"],"})
_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, OSError, UnicodeDecodeError)

Row = tuple[int, int | None, Any]  # (row number in its table, file line or None, value)


# ---------------------------------------------------------------- finding the file


def resolve_backup(backup_dir: Path, ref: str | None) -> Path:
    """The file `restore`/`verify` should read: `latest`, a name inside backup_dir, or a path.

    A bare name is looked up in backup_dir and must not resolve outside it (`..`, symlinks);
    a name not found there may still be a file in the current directory.
    """
    if ref in (None, "", "latest"):
        latest = latest_complete_backup(backup_dir)
        if latest is None:
            raise OpsError(f"no complete backup in {backup_dir} to restore",
                           hint="Create one with `tasklets-db backup`, or name a file: "
                           "`tasklets-db restore FILE`.")
        return latest.path
    given = Path(ref).expanduser()
    if given.is_absolute() or len(given.parts) > 1:
        if given.is_file():
            return given
        raise not_found(backup_dir, ref)
    candidate = backup_dir / ref
    if not candidate.resolve().is_relative_to(backup_dir.resolve()):
        raise OpsError(f"refusing backup name {ref!r}: it points outside BACKUP_DIR "
                       f"({backup_dir})", hint="Give a file name inside BACKUP_DIR, or a path.")
    if candidate.is_file():
        return candidate
    if given.is_file():
        return given
    raise not_found(backup_dir, ref)


def not_found(backup_dir: Path, ref: str) -> OpsError:
    names = [b.name for b in list_backups(backup_dir)]
    if names:
        shown = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10
                                         else "")
        hint = f"Available backups in {backup_dir} (newest first): {shown}"
    else:
        hint = f"There are no backups in {backup_dir}; create one with `tasklets-db backup`."
    return OpsError(f"backup not found: {ref}", hint=hint)


# ---------------------------------------------------------------- reading it


@dataclass
class Section:
    """One table's rows in file order; `count` is final once `rows` is exhausted.

    Line-layout rows are parsed fast (orjson: non-integers become float); `approximate` is
    then True and `exact()` re-parses the current row with Decimal, for the caller to use
    where a float could lose digits (jsonb, unconstrained numeric). Streamed rows are exact.
    """

    name: str
    rows: Iterator[Row]
    first_line: int | None = None  # file line of the first row (line layout)
    count: int = 0
    approximate: bool = False
    raw: bytes = b""  # the current row's JSON text (line layout)

    def drain(self) -> None:
        for _ in self.rows:
            pass

    def exact(self) -> Any:
        return exact_loads(self.raw)


@dataclass
class BackupReader:
    """Open with `with BackupReader(path) as r:`; iterate `r.sections()` once, in order.

    `timestamp`/`version` come from the header; `meta` (None for the seed's files) and the
    per-table checksums are known after the last section.
    """

    path: Path
    decode_rows: bool = True  # False: only walk the structure (listing tables, fast)
    layout: str = ""
    compressed: bool = False
    timestamp: str | None = None
    version: str | None = None
    meta: dict | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _fh: BinaryIO | None = None
    _lineno: int = 0
    _where: str = "at the start"

    # -- opening

    def __enter__(self) -> BackupReader:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        try:
            self._fh = open_backup(self.path)
            self.compressed = isinstance(self._fh, gzip.GzipFile)
            first = self._fh.readline(_HEADER_MAX)
            header = parse_header(first)
            if header is None:
                self.layout = STREAMING
                self._fh.seek(0)
                return
        except _READ_ERRORS as exc:
            raise self.error(f"cannot read the file ({exc})") from None
        self.layout = LINES
        self._lineno = 1
        self._take_header(header)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _take_header(self, header: dict) -> None:
        timestamp = header.get("timestamp")
        self.timestamp = timestamp if isinstance(timestamp, str) else None
        version = header.get("version")
        if version is None:
            raise self.error("no \"version\" field: not a Tasklets backup file")
        if version not in SUPPORTED_VERSIONS:
            raise self.error(f"unknown backup format version {version!r} "
                             f"(supported: {', '.join(sorted(SUPPORTED_VERSIONS))})")
        self.version = version

    def error(self, detail: str) -> OpsError:
        return OpsError(f"bad backup {self.path.name}: {detail}; nothing was changed",
                        hint="Check the file (`tasklets-db verify FILE`) or pick another backup.")

    # -- iterating

    def sections(self) -> Iterator[Section]:
        """Each table in file order; the caller consumes (or drains) one before the next."""
        inner = self._line_sections() if self.layout == LINES else self._stream_sections()
        seen: set[str] = set()
        with self._reading():
            for section in inner:
                if section.name in seen:
                    raise self.error(f"table {section.name!r} appears twice")
                seen.add(section.name)
                self._where = f"in table {section.name!r}"
                yield section
                section.drain()
                self.counts[section.name] = section.count
                self._where = f"after table {section.name!r}"

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn decompression and parser failures into one line saying where they happened."""
        try:
            yield
        except _READ_ERRORS as exc:
            raise self.error(f"the file is truncated or corrupt {self._where} ({exc})") from None
        except ijson.JSONError as exc:
            detail = (str(exc).strip().splitlines() or ["incomplete JSON"])[0]
            raise self.error(f"not valid JSON or truncated {self._where} ({detail})") from None

    def verify_meta(self) -> bool:
        """Check row counts (and sha256, line layout) against meta; True when meta had any."""
        meta = self.meta
        if meta is None:
            return False
        counts = meta.get("rowCounts")
        if isinstance(counts, dict):
            for name, expected in counts.items():
                if name not in self.counts:
                    raise self.error(f"meta lists table {name!r} but the file has no such table "
                                     "(truncated or edited)")
                if self.counts[name] != expected:
                    raise self.error(f"table {name!r} has {self.counts[name]} rows but meta "
                                     f"says {expected} (truncated or edited)")
        sums = meta.get("sha256")
        if self.layout == LINES and isinstance(sums, dict):
            for name, expected in sums.items():
                if self.sha256.get(name, expected) != expected:
                    raise self.error(f"table {name!r} does not match its sha256 in meta "
                                     "(the file was modified or corrupted)")
        return True

    # -- the line layout (ours)

    def _line_sections(self) -> Iterator[Section]:
        fh = self._fh
        assert fh is not None
        for raw in fh:
            self._lineno += 1
            text = raw.strip()
            if not text:
                continue
            if text.startswith(b'"'):
                name = parse_table_open(raw)
                if name is None:
                    raise self.error(f"line {self._lineno}: expected `\"table\": [`")
                section = Section(name, iter(()), self._lineno + 1, approximate=True)
                section.rows = self._line_rows(section)
                yield section
            elif text.startswith(b"}"):
                self._take_tail(text + fh.read(_TAIL_MAX))
                return
            else:
                raise self.error(f"line {self._lineno}: unexpected content outside a table")
        raise self.error(f"the file is truncated {self._where} (it ends before the tables "
                         "are closed)")

    def _line_rows(self, section: Section) -> Iterator[Row]:
        fh = self._fh
        assert fh is not None
        digest = hashlib.sha256()
        decode_rows = self.decode_rows
        count = 0
        with self._reading():
            for raw in fh:
                self._lineno += 1
                if not raw.endswith(b"\n"):  # only the last line of a file cut short lacks one
                    raise self.error(f"the file is truncated in table {section.name!r} after row "
                                     f"{count} (line {self._lineno})")
                content = raw.strip()
                if content in _TABLE_CLOSERS:
                    break
                if not content:
                    continue
                if content.endswith(b","):
                    content = content[:-1]
                digest.update(content)
                digest.update(b"\n")
                count += 1
                section.count = count
                if not decode_rows:
                    continue
                section.raw = content
                try:
                    value = fast_loads(content)
                except ValueError:  # not JSON - or an integer beyond 64 bits: exact parser
                    try:
                        value = exact_loads(content)
                    except ValueError as exc:
                        raise self.error(f"table {section.name!r} row {count} (line "
                                         f"{self._lineno}) is not valid JSON: {exc}") from None
                yield count, self._lineno, value
            else:
                raise self.error(f"the file is truncated in table {section.name!r} after row "
                                 f"{count} (line {self._lineno})")
        self.sha256[section.name] = digest.hexdigest()

    def _take_tail(self, tail: bytes) -> None:
        """What follows the tables object: `}}` (seed) or `}, "meta": {...}}`."""
        rest = tail[1:].strip()
        if rest == b"}":
            return
        try:
            if not rest.startswith(b","):
                raise ValueError("expected `,` or `}`")
            found = json.loads(b"{" + rest[1:], parse_float=Decimal)
        except ValueError as exc:
            raise self.error(f"the end of the file (after the tables) is truncated or not "
                             f"valid JSON: {exc}") from None
        meta = found.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise self.error("\"meta\" is not an object")
        self.meta = meta

    # -- any other layout (the seed's pretty-printed files)

    def _stream_sections(self) -> Iterator[Section]:
        events = ijson.basic_parse(self._fh, use_float=False)
        event, _ = next(events, ("end", None))
        if event != "start_map":
            raise self.error("the file is not a JSON object with \"tables\" "
                             "(not a Tasklets backup)")
        seen_tables = False
        for event, key in events:
            if event == "end_map":
                break
            if key != "tables":
                value = _build(events, *_next(events))
                if key == "version":
                    self._take_header({"version": value, "timestamp": self.timestamp})
                elif key == "timestamp":
                    self.timestamp = value if isinstance(value, str) else None
                elif key == "meta":
                    if not isinstance(value, dict):
                        raise self.error("\"meta\" is not an object")
                    self.meta = value
                continue
            if _next(events)[0] != "start_map":
                raise self.error("\"tables\" is not an object of table name -> rows")
            seen_tables = True
            for event, name in events:
                if event == "end_map":
                    break
                if _next(events)[0] != "start_array":
                    raise self.error(f"table {name!r} is not a list of rows")
                section = Section(name, iter(()))
                section.rows = self._stream_rows(events, section)
                yield section
        else:
            raise self.error("the file is truncated (the JSON object is not closed)")
        if self.version is None:
            raise self.error("no \"version\" field: not a Tasklets backup file")
        if not seen_tables:
            raise self.error("no \"tables\" object: not a Tasklets backup file")

    def _stream_rows(self, events: Iterator, section: Section) -> Iterator[Row]:
        count = 0
        with self._reading():
            for event, value in events:
                if event == "end_array":
                    return
                row = _build(events, event, value) if self.decode_rows else _skip(events, event)
                count += 1
                section.count = count
                yield count, None, row
            raise self.error(f"the file is truncated in table {section.name!r} after row {count}")


_DECODER = json.JSONDecoder(parse_float=Decimal)
fast_loads = orjson.loads


def exact_loads(content: bytes) -> Any:
    """One JSON value, non-integers as Decimal (digits kept: 22.30 stays 22.30)."""
    text = content.decode()
    value, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra content after the row")
    return value


def _next(events: Iterator) -> tuple[str, Any]:
    """The next parser event; the end of input here means the JSON was cut short."""
    try:
        return next(events)
    except StopIteration:
        raise ijson.IncompleteJSONError("incomplete JSON") from None


def _build(events: Iterator, event: str, value: Any) -> Any:
    """The value starting with (event, value), built from the following parser events."""
    if event not in ("start_map", "start_array"):
        return value
    builder = ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return builder.value
    raise ijson.IncompleteJSONError("incomplete JSON")


def _skip(events: Iterator, event: str) -> None:
    if event not in ("start_map", "start_array"):
        return None
    depth = 1
    for event, _ in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return None
    raise ijson.IncompleteJSONError("incomplete JSON")


def table_names(path: Path) -> list[str]:
    """The tables a backup file holds, in file order (walks the file without decoding rows)."""
    with BackupReader(path, decode_rows=False) as reader:
        return [section.name for section in reader.sections()]
