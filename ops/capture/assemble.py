"""Whole transactions from the pgoutput message stream.

A transaction's changes arrive between its Begin and Commit; capture stores only whole ones.
Values are kept in pgoutput's text form, keyed by column name (the Relation message before a
table's first change says which). A transaction bigger than `max_bytes` keeps no changes in
memory (marked `oversize`): capture ends the segment before it and takes a full backup after.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ops.capture.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    DecodeError,
    Relation,
    RowChange,
    Truncate,
    decode,
)
from ops.capture.segments import Change, Transaction
from ops.capture.slot import REVISION_TABLE


@dataclass
class Assembled:
    transaction: Transaction
    size: int  # bytes of its pgoutput messages: what it costs to hold
    revision: str | None = None  # the alembic revision it set (a migration), if any
    oversize: bool = False  # its changes were too many to hold: not in `transaction`


@dataclass
class Assembler:
    max_bytes: int
    relations: dict[int, Relation] = field(default_factory=dict)
    _begin: Begin | None = None
    _changes: list[Change] = field(default_factory=list)
    _size: int = 0
    _revision: str | None = None
    _oversize: bool = False

    def feed(self, rows: Iterable[bytes | memoryview]) -> Iterator[Assembled]:
        for data in rows:
            message = decode(data)
            if isinstance(message, RowChange):
                self._row(message, len(data))
            elif isinstance(message, Begin):
                self._begin, self._changes, self._size = message, [], 0
                self._revision, self._oversize = None, False
            elif isinstance(message, Commit):
                yield self._commit(message)
            elif isinstance(message, Relation):
                self.relations[message.oid] = message
            elif isinstance(message, Truncate):
                for oid in message.relations:
                    self._add(Change("truncate", self._relation(oid).name), 16)

    def _commit(self, commit: Commit) -> Assembled:
        begin = self._begin
        if begin is None:
            raise DecodeError("pgoutput Commit without its Begin")
        self._begin = None
        tx = Transaction(begin.xid, commit.lsn, commit.end_lsn, commit.commit_time,
                         [] if self._oversize else self._changes)
        return Assembled(tx, self._size, self._revision, self._oversize)

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise DecodeError(f"pgoutput change of relation {oid} before its Relation "
                              "message") from None

    def _row(self, message: RowChange, size: int) -> None:
        relation = self._relation(message.relation)
        new = _named(relation.columns, message.new)
        if message.old is None:
            key = None
        elif message.old_is_key:
            key = {c: v for c, v in _named(relation.columns, message.old).items()
                   if c in relation.key_columns}
        else:  # REPLICA IDENTITY FULL: the whole old row identifies it
            key = _named(relation.columns, message.old)
        if relation.name == REVISION_TABLE:  # the migration marker, not data
            version = new.get("version_num") if message.op != "delete" else None
            if isinstance(version, str):
                self._revision = version
            return
        if message.op == "delete" and key is None:
            raise DecodeError(f"pgoutput delete on {relation.name} without a key")
        row: dict[str, Any] | None = new if message.new is not None else None
        unchanged: tuple[str, ...] = ()
        if message.new is not None and UNCHANGED in message.new:
            unchanged = tuple(c for c, v in new.items() if v is UNCHANGED)
            row = {c: v for c, v in new.items() if v is not UNCHANGED}
        self._add(Change(message.op, relation.name, row, key, unchanged), size)

    def _add(self, change: Change, size: int) -> None:
        self._size += size
        if self._oversize:
            return
        if self._size > self.max_bytes:
            self._oversize, self._changes = True, []
            return
        self._changes.append(change)


def _named(columns: tuple[str, ...], values: tuple[object, ...] | None) -> dict[str, Any]:
    if values is None:
        return {}
    if len(values) != len(columns):
        raise DecodeError(f"pgoutput tuple of {len(values)} values for {len(columns)} columns")
    return dict(zip(columns, values, strict=True))
