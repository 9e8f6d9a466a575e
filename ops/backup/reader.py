"""Reading a backup as a stream of tables and rows, in bounded memory.

Two readers behind one interface:
- the line reader, for files laid out as `ops.backup.format` describes (one row per line):
  each row is one fast parse, and per-table sha256 / row counts are checked against meta;
- a streaming reader for every other layout of the same JSON, e.g. the seed tool's
  pretty-printed files: the structure is walked by hand and each row decoded on its own.
Numbers are parsed exactly (non-integers as Decimal, never float; integers of any length).
No row may exceed MAX_ROW_BYTES, so a hostile file (one giant line or string) is refused
after reading that much, never loaded whole.

Every problem with the file becomes one OpsError naming the table, the row and (for the line
reader) the file line.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO, cast

import orjson

from ops.backup.compression import READ_ERRORS, decompressing, detect
from ops.backup.deep_json import is_deep, loads_deep_row, skip_whitespace
from ops.backup.encryption import AGE_MAGIC, IDENTITY_VARIABLE, decrypting_reader, is_encrypted
from ops.backup.files import Source, as_ref, is_encrypted_name, read_meta
from ops.backup.format import (
    BOM,
    MAX_ROW_BYTES,
    SUPPORTED_VERSIONS,
    parse_header,
    parse_table_open,
)
from ops.backup.integrity import Integrity, StoredBytesTap
from ops.core.errors import BadBackup, OpsError
from ops.core.output import suggest

LINES = "lines"
STREAMING = "streaming"

_HEADER_MAX = 64 * 1024  # our header line is short; a longer first line means another layout
_TAIL_MAX = 16 * 1024 * 1024  # what may follow the tables (meta) before we call it garbage
_TABLE_CLOSERS = frozenset({b"]", b"],"})
_READ_ERRORS = (*READ_ERRORS, OSError, UnicodeDecodeError)

Row = tuple[int, int | None, Any]  # (row number in its table, file line or None, value)


# ---------------------------------------------------------------- reading it


class FileProblem(ValueError):
    """Something wrong with the file's content: what, and optionally a detail; the reader
    turns it into one OpsError saying where."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(what, detail)
        self.what = what
        self.detail = detail


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
    json_text: frozenset[str] = frozenset()  # keys holding a `json` column's exact text

    def drain(self) -> None:
        for _ in self.rows:
            pass

    def exact(self) -> Any:
        return exact_loads(self.raw)


NOT_AN_OBJECT = ("not valid JSON or truncated: the file is not a JSON object with \"tables\" "
                 "(not a Tasklets backup)")


@dataclass
class BackupReader:
    """Open with `with BackupReader(source) as r:`; iterate `r.sections()` once, in order.

    The source is streamed from its store, decrypted (age, with `identities`) and
    decompressed (zstd or gzip) as it is read: all are told by their magic bytes, not the name.
    `timestamp`/`version` come from the header; `meta` (None for the seed's files) and the
    per-table checksums are known after the last section.
    """

    source: Source
    decode_rows: bool = True  # False: only walk the structure (line layout: no parsing)
    identities: Sequence[Any] = ()
    integrity: Integrity | None = None  # its sidecar: the stored bytes are hashed as read
    stored: StoredBytesTap | None = None
    layout: str = ""
    compressed: bool = False
    compression: str | None = None  # "zstd" or "gzip"
    encrypted: bool = False
    timestamp: str | None = None
    version: str | None = None
    meta: dict[str, Any] | None = None
    # meta read from the file's end when opened (our layout)
    tail_meta: dict[str, Any] | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _fh: BinaryIO | None = None
    _opened: list[BinaryIO] = field(default_factory=list)  # to close, innermost last
    _doc: JsonStream | None = None  # the streaming layout's document, its start read
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
        self.ref = as_ref(self.source)
        try:
            raw = self.ref.open()
            if self.integrity is not None:
                self.stored = StoredBytesTap(raw)
                raw = self.stored  # type: ignore[assignment]  # a raw stream: _stacked buffers it
            stream = self._stacked(raw)
            if is_encrypted(stream.peek(len(AGE_MAGIC))):
                if not self.identities:
                    raise OpsError(f"{self.ref.name} is encrypted and no identity was given; "
                                   "nothing was changed",
                                   hint=f"Set {IDENTITY_VARIABLE} (or --identity) to the age "
                                   "identity file that decrypts it.")
                self.encrypted = True
                stream = self._stacked(decrypting_reader(stream, self.identities,
                                                         what=self.ref.name))
            self.compression = detect(stream.peek(4)[:4])
            if self.compression is not None:
                self.compressed = True
                stream = self._stacked(decompressing(stream, self.compression))
            self._fh = stream
            first = stream.readline(_HEADER_MAX).removeprefix(BOM)  # an editor's mark
            header = parse_header(first)
            if header is None:
                self.layout = STREAMING
                self._doc = JsonStream(stream, first)
                # Checked on opening, so that nothing is announced or done for a file that
                # is no backup at all (a README passed by mistake).
                if self._doc.peek() != "{":
                    raise self.error(NOT_AN_OBJECT)
                return
        except _READ_ERRORS as exc:
            raise self.error(f"the file is truncated or corrupt at its start ({exc})") from None
        self.layout = LINES
        self._lineno = 1
        self._take_header(header)
        if not self.encrypted:  # meta is inside the ciphertext otherwise
            self.tail_meta = read_meta(self.ref)

    def _stacked(self, stream: BinaryIO) -> io.BufferedReader[Any]:
        """`stream` (buffered, so its first bytes can be peeked), to be closed with us."""
        if isinstance(stream, io.BufferedReader):
            buffered = stream
        else:  # every stream stacked here is a raw or buffered binary file
            buffered = io.BufferedReader(cast(io.RawIOBase, stream))
        self._opened.append(buffered)
        return buffered

    def json_text_keys(self, table: str) -> frozenset[str]:
        """Keys whose values are the exact text of a `json` column (meta `jsonText`)."""
        listed = (self.tail_meta or {}).get("jsonText")
        keys = listed.get(table) if isinstance(listed, dict) else None
        return frozenset(k for k in keys if isinstance(k, str)) if isinstance(keys, list) \
            else frozenset()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh = None
        while self._opened:
            with contextlib.suppress(Exception):  # closing after a failure must not mask it
                self._opened.pop().close()

    def _take_header(self, header: dict[str, Any]) -> None:
        timestamp = header.get("timestamp")
        self.timestamp = timestamp if isinstance(timestamp, str) else None
        version = header.get("version")
        if version is None:
            raise self.error("no \"version\" field: not a Tasklets backup file")
        if version not in SUPPORTED_VERSIONS:
            raise self.error(f"unknown backup format version {version!r} "
                             f"(supported: {', '.join(sorted(SUPPORTED_VERSIONS))})")
        self.version = version

    def error(self, detail: str) -> BadBackup:
        return BadBackup(self.ref.name if hasattr(self, "ref") else str(self.source), detail,
                         hint=f"Check the file ({suggest('verify FILE')}) or pick another backup.")

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
        except FileProblem as exc:
            detail = f" ({exc.detail})" if exc.detail else ""
            raise self.error(f"{exc.what} {self._where}{detail}") from None

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

    def _readline(self) -> bytes:
        """The next line, at most MAX_ROW_BYTES: a longer one is refused before it is read."""
        assert self._fh is not None
        raw = self._fh.readline(MAX_ROW_BYTES + 1)
        if len(raw) > MAX_ROW_BYTES:
            raise self.error(f"line {self._lineno + 1} {self._where} is longer than "
                             f"{MAX_ROW_BYTES >> 20} MB (no row is that large)")
        return raw

    def _cut(self, raw: bytes) -> BadBackup | None:
        """The truncation a last line without its newline is (cut short, it reads as
        malformed), or None for a whole line."""
        if raw.endswith(b"\n"):
            return None
        return self.error(f"the file is truncated {self._where} (line {self._lineno} ends "
                          "without its newline)")

    def _line_sections(self) -> Iterator[Section]:
        fh = self._fh
        assert fh is not None
        while raw := self._readline():
            self._lineno += 1
            text = raw.strip()
            if not text:
                continue
            if text.startswith(b'"'):
                name = parse_table_open(raw)
                if name is None:
                    raise self._cut(raw) or self.error(
                        f"line {self._lineno}: expected `\"table\": [`")
                section = Section(name, iter(()), self._lineno + 1, approximate=True,
                                  json_text=self.json_text_keys(name))
                section.rows = self._line_rows(section)
                yield section
            elif text.startswith(b"}"):
                self._take_tail(text + fh.read(_TAIL_MAX))
                return
            else:
                raise self._cut(raw) or self.error(
                    f"line {self._lineno}: unexpected content outside a table")
        raise self.error(f"the file is truncated {self._where} (it ends before the tables "
                         "are closed)")

    def _line_rows(self, section: Section) -> Iterator[Row]:
        digest = hashlib.sha256()
        decode_rows = self.decode_rows
        readline = self._readline
        count = 0
        with self._reading():
            while raw := readline():
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
                    if is_deep(content):
                        raise ValueError("nested deeper than the fast parser goes")
                    value = fast_loads(content)
                except ValueError:  # not JSON, an integer beyond 64 bits, deep: exact parser
                    try:
                        value = exact_loads(content)
                    except (ValueError, RecursionError) as exc:
                        raise self.error(f"table {section.name!r} row {count} (line "
                                         f"{self._lineno}) is not valid JSON: "
                                         f"{_first_line(exc)}") from None
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
            found = exact_loads(b"{" + rest[1:])
        except (ValueError, RecursionError) as exc:
            raise self.error(f"the end of the file (after the tables) is truncated or not "
                             f"valid JSON: {_first_line(exc)}") from None
        meta = found.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise self.error("\"meta\" is not an object")
        self.meta = meta

    # -- any other layout (the seed's pretty-printed files)

    def _stream_sections(self) -> Iterator[Section]:
        doc = self._doc
        assert doc is not None
        doc.expect("{")
        seen_tables = False
        for key in doc.members():
            if key != "tables":
                value = doc.value()
                if key == "version":
                    self._take_header({"version": value, "timestamp": self.timestamp})
                elif key == "timestamp":
                    self.timestamp = value if isinstance(value, str) else None
                elif key == "meta":
                    if not isinstance(value, dict):
                        raise self.error("\"meta\" is not an object")
                    self.meta = value
                continue
            if doc.peek() != "{":
                raise self.error("\"tables\" is not an object of table name -> rows")
            doc.expect("{")
            seen_tables = True
            for name in doc.members():
                if doc.peek() != "[":
                    raise self.error(f"table {name!r} is not a list of rows")
                doc.expect("[")
                section = Section(name, iter(()))
                section.rows = self._stream_rows(doc, section)
                yield section
        doc.end()
        if self.version is None:
            raise self.error("no \"version\" field: not a Tasklets backup file")
        if not seen_tables:
            raise self.error("no \"tables\" object: not a Tasklets backup file")

    def _stream_rows(self, doc: JsonStream, section: Section) -> Iterator[Row]:
        count = 0
        with self._reading():
            for _ in doc.elements():
                try:
                    row = doc.value()
                except FileProblem as exc:
                    detail = f"row {count + 1}" + (f": {exc.detail}" if exc.detail else "")
                    raise FileProblem(exc.what, detail) from None
                count += 1
                section.count = count
                yield count, None, row


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


_INT_DIGITS_SAFE = 4000  # below Python's int-parsing limit; longer integers stay Decimal


def _parse_int(text: str) -> int | float | Decimal:
    """An integer of any length: Python refuses to parse very long ones, Decimal does not
    (and keeps every digit, which is all a numeric or jsonb column needs). `-0` is a float
    column's negative zero (row_to_json writes it without a fraction): it stays -0.0."""
    if text == "-0":
        return -0.0
    return int(text) if len(text) < _INT_DIGITS_SAFE else Decimal(text)


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=_parse_int)
fast_loads = orjson.loads


def exact_loads(content: bytes) -> Any:
    """One JSON value, non-integers as Decimal (digits kept: 22.30 stays 22.30); a row nested
    too deep to parse keeps its deep fields as their text (ops.backup.deep_json)."""
    if is_deep(content):
        return loads_deep_row(content, _exact_text)
    return _exact_text(content.decode())


def _exact_text(text: str) -> Any:
    value, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra content after the row")
    return value


_CHUNK = 1 << 20


class JsonStream:
    """One JSON document read incrementally: objects and arrays walked by hand, every other
    value (a row, a key, meta) decoded whole by the exact C decoder.

    Memory is bounded by the largest single value, itself capped at MAX_ROW_BYTES: a value
    that has not ended by then is refused.
    """

    def __init__(self, fh: BinaryIO, prefix: bytes = b"") -> None:
        self._fh = fh
        self._decode = codecs.getincrementaldecoder("utf-8")().decode
        self._buf = self._decode(prefix)
        self._pos = 0
        self._eof = False

    def _more(self, at_least: int = _CHUNK) -> None:
        """Append at least `at_least` more characters (less only at the end of the file)."""
        if self._pos:
            self._buf = self._buf[self._pos:]
            self._pos = 0
        target = len(self._buf) + at_least
        while len(self._buf) < target and not self._eof:
            chunk = self._fh.read(max(_CHUNK, at_least))
            self._buf += self._decode(chunk, final=not chunk)
            self._eof = not chunk

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end of the file)."""
        while True:
            self._pos = skip_whitespace(self._buf, self._pos)
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if self._eof:
                return ""
            self._more()

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise FileProblem("not valid JSON or truncated",
                              f"expected {char!r}, found {found!r}" if found else "")
        self._pos += 1

    def value(self) -> Any:
        """The next complete value; reads more until it ends (at most MAX_ROW_BYTES)."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
                if end < len(self._buf) or self._eof:  # a number may go on past the buffer
                    self._pos = end
                    return value
            except json.JSONDecodeError as exc:
                if self._eof:
                    raise FileProblem("not valid JSON or truncated", exc.msg) from None
            except RecursionError:
                raise FileProblem("not valid JSON", "nested too deeply") from None
            pending = len(self._buf) - self._pos
            if pending > MAX_ROW_BYTES:
                raise FileProblem(f"a value longer than {MAX_ROW_BYTES >> 20} MB (no row is "
                                  "that large)")
            self._more(pending)  # doubling: the retries cost at most twice the value

    def members(self) -> Iterator[str]:
        """The keys of the object whose `{` was just read; the caller reads each value."""
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise FileProblem("not valid JSON", "an object key is not a string")
            self.expect(":")
            yield key
            if self.peek() == ",":
                self._pos += 1
                continue
            self.expect("}")
            return

    def elements(self) -> Iterator[None]:
        """Once per element of the array whose `[` was just read; the caller reads each."""
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield
            if self.peek() == ",":
                self._pos += 1
                continue
            self.expect("]")
            return

    def end(self) -> None:
        if self.peek():
            raise FileProblem("not valid JSON", "extra content after the end")


def table_names(source: Source, identities: Sequence[Any] = ()) -> list[str]:
    """The tables a backup holds, in file order (walks the file without decoding rows)."""
    with BackupReader(source, decode_rows=False, identities=identities) as reader:
        return [section.name for section in reader.sections()]


def backup_meta(source: Source, identities: Sequence[Any] = ()) -> dict[str, Any] | None:
    """A backup's meta: read from its tail, or, when encrypted (meta is inside the
    ciphertext), by streaming it through."""
    ref = as_ref(source)
    if not is_encrypted_name(ref.name):
        return read_meta(ref)
    with BackupReader(ref, decode_rows=False, identities=identities) as reader:
        for section in reader.sections():
            for _ in section.rows:
                pass
        return reader.meta
