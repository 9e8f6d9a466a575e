"""The pgoutput plugin's binary messages (protocol version 1), decoded.

pgoutput is built into every PostgreSQL since 10 (no extension to install on managed services);
`pg_logical_slot_peek_binary_changes` returns its messages as bytea. Only what capture needs
is decoded: Begin, Commit, Relation, Insert, Update, Delete, Truncate; Origin and Type messages
are recognised and skipped. Tuple values arrive in PostgreSQL's text form, which is what the
change segments keep ('n' is NULL, 'u' an unchanged TOASTed value an UPDATE did not send).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from ops.core.errors import OpsError

# Commit timestamps count microseconds from PostgreSQL's epoch.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UNCHANGED = object()  # a TOASTed value an UPDATE left as it was (kind 'u')


class DecodeError(OpsError):
    """A pgoutput message this decoder cannot read: a bug or an unsupported protocol."""


class Begin(NamedTuple):
    final_lsn: int
    commit_time: datetime
    xid: int


class Commit(NamedTuple):
    lsn: int  # the commit record's LSN
    end_lsn: int  # the end of the transaction: where the slot may be advanced to
    commit_time: datetime


class Relation(NamedTuple):
    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]  # the replica identity's columns


class RowChange(NamedTuple):
    """An insert, update or delete. Values are text, None (NULL) or UNCHANGED."""

    op: str  # "insert" | "update" | "delete"
    relation: int
    new: tuple[object, ...] | None
    old: tuple[object, ...] | None  # the old key ('K') or whole old row ('O'); None if absent
    old_is_key: bool = True


class Truncate(NamedTuple):
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Relation | RowChange | Truncate | None
# Named tuples, not dataclasses: tens of thousands are made a second, and a frozen dataclass
# costs several times a tuple to build.


# Messages come by the tens of thousands a second under load, and capture shares the machine
# with the database: the readers below are plain functions over precompiled structs, without
# a call per field (a reader object with one call per field took three times as long).
_I16 = struct.Struct("!h")
_U32 = struct.Struct("!I")
_I32 = struct.Struct("!i")
_BEGIN = struct.Struct("!QqI")  # final LSN, commit time, xid
_COMMIT = struct.Struct("!BQQq")  # flags, commit LSN, end LSN, commit time


def _timestamp(microseconds: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=microseconds)


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode(), end + 1


def _tuple(data: bytes, pos: int) -> tuple[tuple[object, ...], int]:
    """A TupleData at pos: its values and the position after it."""
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list[object] = []
    append = values.append
    unpack_length = _I32.unpack_from
    for _ in range(count):
        kind = data[pos]
        if kind == 116:  # 't': text (literals: a global lookup per value costs)
            end = pos + 5 + unpack_length(data, pos + 1)[0]
            append(data[pos + 5:end].decode())
            pos = end
        elif kind == 110:  # 'n': NULL
            append(None)
            pos += 1
        elif kind == 117:  # 'u': an unchanged TOASTed value
            append(UNCHANGED)
            pos += 1
        else:  # 'b' (binary) only with the `binary` option, which capture never sets
            raise DecodeError(f"pgoutput tuple value of kind {chr(kind)!r} is not supported")
    if pos > len(data):  # a slice past the end is short, not an error: caught here once
        raise DecodeError("pgoutput tuple value ends early")
    return tuple(values), pos


def decode(data: bytes | memoryview) -> Message:
    """One pgoutput message; None for the kinds capture does not need (Origin, Type)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise DecodeError("empty pgoutput message")
    kind = chr(data[0])
    try:
        return _DECODERS[kind](data) if kind in _DECODERS else _skip(kind)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot decode pgoutput message {kind!r}: {exc}") from exc


def _skip(kind: str) -> Message:
    if kind in ("O", "Y", "M"):
        return None
    raise DecodeError(f"unexpected pgoutput message {kind!r}",
                      hint="capture asks for protocol version 1; is the plugin pgoutput?")


def _begin(data: bytes) -> Begin:
    final_lsn, commit_time, xid = _BEGIN.unpack_from(data, 1)
    return Begin(final_lsn, _timestamp(commit_time), xid)


def _commit(data: bytes) -> Commit:
    _flags, lsn, end_lsn, commit_time = _COMMIT.unpack_from(data, 1)
    return Commit(lsn, end_lsn, _timestamp(commit_time))


def _relation(data: bytes) -> Relation:
    (oid,) = _U32.unpack_from(data, 1)
    schema, pos = _string(data, 5)
    name, pos = _string(data, pos)
    pos += 1  # replica identity setting
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    columns: list[str] = []
    keys: list[str] = []
    for _ in range(count):
        flags = data[pos]
        column, pos = _string(data, pos + 1)
        pos += 8  # type oid, type modifier
        columns.append(column)
        if flags & 1:
            keys.append(column)
    if pos > len(data):
        raise DecodeError("pgoutput Relation message ends early")
    return Relation(oid, schema, name, tuple(columns), tuple(keys))


def _insert(data: bytes) -> RowChange:
    (oid,) = _U32.unpack_from(data, 1)
    new, _ = _tuple(data, 6)  # after the 'N'
    return RowChange("insert", oid, new, None)


def _update(data: bytes) -> RowChange:
    (oid,) = _U32.unpack_from(data, 1)
    kind = data[5]
    old = None
    pos = 6
    if kind in (75, 79):  # 'K', 'O': the old key or row, then 'N'
        old, pos = _tuple(data, 6)
        pos += 1
    new, _ = _tuple(data, pos)
    return RowChange("update", oid, new, old, kind != 79)


def _delete(data: bytes) -> RowChange:
    (oid,) = _U32.unpack_from(data, 1)
    old, _ = _tuple(data, 6)
    return RowChange("delete", oid, None, old, data[5] != 79)


def _truncate(data: bytes) -> Truncate:
    (count,) = _I32.unpack_from(data, 1)
    options = data[5]
    relations = struct.unpack_from(f"!{count}I", data, 6)
    return Truncate(tuple(relations), bool(options & 1), bool(options & 2))


_DECODERS: dict[str, Callable[[bytes], Message]] = {
    "B": _begin, "C": _commit, "R": _relation, "I": _insert, "U": _update, "D": _delete,
    "T": _truncate}
