"""The pgoutput plugin's binary messages (protocol version 1), decoded.

pgoutput is built into every PostgreSQL since 10 (no extension to install on managed services);
`pg_logical_slot_peek_binary_changes` returns its messages as bytea. Only what capture needs
is decoded: Begin, Commit, Relation, Insert, Update, Delete, Truncate; Origin and Type messages
are recognised and skipped. Tuple values arrive in PostgreSQL's text form, which is what the
change segments keep ('n' is NULL, 'u' an unchanged TOASTed value an UPDATE did not send).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ops.core.errors import OpsError

# Commit timestamps count microseconds from PostgreSQL's epoch.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UNCHANGED = object()  # a TOASTed value an UPDATE left as it was (kind 'u')


class DecodeError(OpsError):
    """A pgoutput message this decoder cannot read: a bug or an unsupported protocol."""


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    lsn: int  # the commit record's LSN
    end_lsn: int  # the end of the transaction: where the slot may be advanced to
    commit_time: datetime


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]  # the replica identity's columns


@dataclass(frozen=True)
class RowChange:
    """An insert, update or delete. Values are text, None (NULL) or UNCHANGED."""

    op: str  # "insert" | "update" | "delete"
    relation: int
    new: tuple[object, ...] | None
    old: tuple[object, ...] | None  # the old key ('K') or whole old row ('O'); None if absent
    old_is_key: bool = True


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Relation | RowChange | Truncate | None


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def byte(self) -> str:
        value = self.data[self.pos:self.pos + 1]
        if not value:
            raise DecodeError("pgoutput message ends early")
        self.pos += 1
        return value.decode("ascii")

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos:end].decode()
        self.pos = end + 1
        return value

    def text(self, length: int) -> str:
        value = self.data[self.pos:self.pos + length]
        if len(value) != length:
            raise DecodeError("pgoutput tuple value ends early")
        self.pos += length
        return value.decode()

    def timestamp(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.take("!q"))

    def tuple(self) -> tuple[object, ...]:
        values: list[object] = []
        for _ in range(self.take("!h")):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self.text(self.take("!i")))
            else:  # 'b' (binary) only with the `binary` option, which capture never sets
                raise DecodeError(f"pgoutput tuple value of kind {kind!r} is not supported")
        return tuple(values)


def decode(data: bytes | memoryview) -> Message:
    """One pgoutput message; None for the kinds capture does not need (Origin, Type)."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    try:
        return _DECODERS[kind](reader) if kind in _DECODERS else _skip(kind)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot decode pgoutput message {kind!r}: {exc}") from exc


def _skip(kind: str) -> None:
    if kind in ("O", "Y", "M"):
        return None
    raise DecodeError(f"unexpected pgoutput message {kind!r}",
                      hint="capture asks for protocol version 1; is the plugin pgoutput?")


def _begin(r: _Reader) -> Begin:
    final_lsn = r.take("!Q")
    commit_time = r.timestamp()
    return Begin(final_lsn, commit_time, r.take("!I"))


def _commit(r: _Reader) -> Commit:
    r.take("!B")  # flags: none defined
    lsn = r.take("!Q")
    end_lsn = r.take("!Q")
    return Commit(lsn, end_lsn, r.timestamp())


def _relation(r: _Reader) -> Relation:
    oid = r.take("!I")
    schema = r.string()
    name = r.string()
    r.take("!B")  # replica identity setting
    columns: list[str] = []
    keys: list[str] = []
    for _ in range(r.take("!h")):
        flags = r.take("!B")
        column = r.string()
        r.take("!I")  # type oid
        r.take("!i")  # type modifier
        columns.append(column)
        if flags & 1:
            keys.append(column)
    return Relation(oid, schema, name, tuple(columns), tuple(keys))


def _insert(r: _Reader) -> RowChange:
    oid = r.take("!I")
    r.byte()  # 'N'
    return RowChange("insert", oid, r.tuple(), None)


def _update(r: _Reader) -> RowChange:
    oid = r.take("!I")
    kind = r.byte()
    old = None
    if kind in ("K", "O"):
        old = r.tuple()
        r.byte()  # 'N'
    return RowChange("update", oid, r.tuple(), old, kind != "O")


def _delete(r: _Reader) -> RowChange:
    oid = r.take("!I")
    kind = r.byte()
    return RowChange("delete", oid, None, r.tuple(), kind != "O")


def _truncate(r: _Reader) -> Truncate:
    count = r.take("!i")
    options = r.take("!B")
    relations = tuple(r.take("!I") for _ in range(count))
    return Truncate(relations, bool(options & 1), bool(options & 2))


_DECODERS = {"B": _begin, "C": _commit, "R": _relation, "I": _insert, "U": _update,
             "D": _delete, "T": _truncate}
