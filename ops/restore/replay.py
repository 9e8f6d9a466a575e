"""Apply change segments on top of a restored backup: the transactions its snapshot does not
hold, committed at or before the target time, in LSN order, each once.

Values are pgoutput's text form; every one is cast by PostgreSQL (`%s::text::type`, the
type's own input function), so arrays, enums, jsonb and numerics come back exactly as the
server printed them. Rows are found by primary key (a delete or an update that moved the key
by its old key). Generated columns are never written; an UPDATE's TOASTed-unchanged columns
keep the current value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from ops.capture.segments import Change, Transaction
from ops.core.catalog import Table
from ops.core.errors import OpsError

XID_SPAN = 1 << 32


@dataclass(frozen=True)
class Snapshot:
    """pg_current_snapshot() as text, `xmin:xmax:xip,…` (64-bit xids)."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        try:
            xmin, xmax, xip = text.split(":")
            return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))
        except ValueError:
            raise OpsError(f"the backup records an unreadable snapshot {text!r}") from None

    def widen(self, xid: int) -> int:
        """A 32-bit xid from pgoutput as the 64-bit xid nearest this snapshot's xmax (xids
        of concern are within 2^31 of it, or wraparound would have stopped the server)."""
        full = (self.xmax & ~(XID_SPAN - 1)) | xid
        if full > self.xmax + XID_SPAN // 2:
            full -= XID_SPAN
        elif full < self.xmax - XID_SPAN // 2:
            full += XID_SPAN
        return full

    def holds(self, xid: int) -> bool:
        """Whether the backup taken in this snapshot already holds the transaction `xid`."""
        full = self.widen(xid)
        return full < self.xmin or (full < self.xmax and full not in self.xip)


@dataclass
class Counts:
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    transactions: int = 0

    def add(self, which: dict[str, int], table: str, count: int) -> None:
        if count:
            which[table] = which.get(table, 0) + count

    def as_json(self) -> dict[str, dict[str, int]]:
        tables = sorted({*self.inserted, *self.updated, *self.deleted})
        return {t: {"inserted": self.inserted.get(t, 0), "updated": self.updated.get(t, 0),
                    "deleted": self.deleted.get(t, 0)} for t in tables}


def wanted(transactions: Iterable[Transaction], snapshot: Snapshot,
           keep: Callable[[Transaction], bool]) -> Iterator[Transaction]:
    """The transactions to apply, each once: not in the snapshot, taken by `keep` (committed
    by the target time), in commit-LSN order (a segment stored twice repeats a range)."""
    last = -1
    for tx in transactions:
        if tx.lsn <= last:
            continue  # seen already: an overlapping segment
        last = tx.lsn
        if not snapshot.holds(tx.xid) and keep(tx):
            yield tx


Member = Callable[[Change], bool | None]  # True: the scope's; False: not; None: by its key


class Target:
    """Where changes go: one relation per app table (the live table, or a tenant's stage).

    Statements are sent in a pipeline (no round trip waits for the one before: none of them
    depends on another's result) and rendered once per table and column set, so PostgreSQL
    prepares them; rows affected are counted when the pipeline syncs.

    Relations no constraint ties to others (a tenant's stages, `unconstrained`) take changes
    in batches, set-based: per table, one statement per kind and column set over arrays of
    values. No two changes waiting in a table's batch touch the same key (a change on a
    waiting key sends the batch first), so each row's changes keep their order; the order
    between tables does not matter without constraints. Live tables' foreign keys check each
    statement, so there every change is sent on its own, in order."""

    BATCH = 500  # statements between syncs: bounds what waits to be counted
    ROWS = 2000  # changes a table's batch holds before it is sent
    KINDS = ("delete", "update", "insert", "join")  # a change's update before its join

    def __init__(self, conn: psycopg.Connection, tables: list[Table],
                 relation: Callable[[str], sql.Composable] | None = None, *,
                 unconstrained: bool = False,
                 present: dict[str, set[tuple[Any, ...]]] | None = None) -> None:
        self.conn = conn
        self.unconstrained = unconstrained
        self.present = present or {}
        self.tables = {t.name: t for t in tables}
        self.order = {t.name: i for i, t in enumerate(tables)}
        self.relation = relation or (lambda name: self.tables[name].ident)
        self._rendered: dict[tuple[Any, ...], str] = {}
        self._pending: list[tuple[dict[str, int], str, psycopg.Cursor]] = []
        self._batches: dict[str, _Batch] = {}
        self.pipeline: psycopg.Pipeline | None = None

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def _send(self, key: tuple[Any, ...], build: Callable[[], sql.Composable], params: list[Any],
              counted: dict[str, int], table: str) -> None:
        text = self._rendered.get(key)
        if text is None:
            text = self._rendered[key] = build().as_string(self.conn)
        self._pending.append((counted, table, self.conn.execute(text, params)))
        if len(self._pending) >= self.BATCH:
            self.settle()

    def settle(self) -> None:
        """Send every batch, wait for what was sent and count the rows each statement
        affected."""
        for name in list(self._batches):
            self._flush(name)
        if not self._pending:
            return
        if self.pipeline is not None:
            self.pipeline.sync()
        for counted, table, cursor in self._pending:
            if cursor.rowcount > 0:
                counted[table] = counted.get(table, 0) + cursor.rowcount
        self._pending.clear()

    def _type(self, table: Table, column: str) -> str:
        return next(c.type for c in table.columns if c.name == column)

    def _key(self, table: Table, key: dict[str, str | None]) -> list[str | None]:
        """The primary-key values of a change."""
        if table.primary_key:
            with contextlib.suppress(KeyError):
                return [key[c] for c in table.primary_key]
        missing = [c for c in table.primary_key if c not in key]
        raise OpsError(f"a change to {table.name} does not carry its primary key "
                       f"({', '.join(missing) or 'none'}); it cannot be replayed")

    def has(self, table: Table, key: dict[str, str | None]) -> bool:
        """Whether the relation holds the row with `key` now (asked when its keys are not
        known: the changes waiting are sent first)."""
        values = self._key(table, key)
        keys = self.present.get(table.name)
        if keys is not None:
            return tuple(values) in keys
        self.settle()
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = %s::text::{}").format(sql.Identifier(c),
                                                  sql.SQL(self._type(table, c)))
            for c in table.primary_key)
        found = self.conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {} AS t WHERE {})").format(
            self.relation(table.name), match), values).fetchone()
        return bool(found and found[0])

    def _holds(self, table: Table, key: tuple[Any, ...]) -> bool:
        """Whether the relation may hold the row with `key` (True unless its keys are known)."""
        keys = self.present.get(table.name)
        return keys is None or key in keys

    def _track(self, table: Table, gone: tuple[Any, ...] | None,
               added: list[tuple[Any, ...]] | None) -> None:
        keys = self.present.get(table.name)
        if keys is not None:
            if gone is not None:
                keys.discard(gone)
            if added is None:  # a row without its key: it can no longer be told
                del self.present[table.name]
            else:
                keys.update(added)

    def insert(self, table: Table, row: dict[str, str | None], counts: Counts) -> None:
        names = tuple(c.name for c in table.writable_columns if c.name in row)
        keys = _keys_of(table, row)
        self._track(table, None, keys)
        self._queue(table, [("insert", names, [row[n] for n in names], counts.inserted)], keys)

    def update(self, table: Table, key: dict[str, str | None], row: dict[str, str | None],
               unchanged: tuple[str, ...], counts: Counts, *, join: bool = False) -> None:
        """UPDATE the row with `key`; `join`: then insert it unless a row with its (new) key
        is there (a row that joined the scope: the target did not hold it)."""
        if not table.primary_key and not join and _has_old_row(key, row):
            names = tuple(c.name for c in table.writable_columns
                          if c.name in row and c.name not in unchanged)
            if names:
                self._unkeyed(table, "update", key, names, [row[n] for n in names],
                              counts.updated)
            return
        old = self._key(table, key)
        there = self._holds(table, tuple(old))
        names = tuple(c.name for c in table.writable_columns
                      if c.name in row and c.name not in unchanged)
        ops: list[_Op] = []
        if names and there:
            ops.append(("update", names, [row[n] for n in names] + old, counts.updated))
        if join:
            every = tuple(c.name for c in table.writable_columns if c.name in row)
            ops.append(("join", every, [row[n] for n in every] + self._key(table, row),
                        counts.inserted))
        if ops:
            self._track(table, tuple(old), _keys_of(table, row))
            self._queue(table, ops, _keys_of(table, key, row))

    def delete(self, table: Table, key: dict[str, str | None], counts: Counts) -> None:
        if not table.primary_key and key:
            self._unkeyed(table, "delete", key, (), [], counts.deleted)
            return
        values = self._key(table, key)  # (it refuses a change without its key)
        if not self._holds(table, tuple(values)):
            return  # a row the relation does not hold: the statement would find nothing
        self._track(table, tuple(values), [])
        self._queue(table, [("delete", (), values, counts.deleted)], [tuple(values)])

    def _unkeyed(self, table: Table, kind: str, old: dict[str, str | None],
                 names: tuple[str, ...], values: list[str | None],
                 counted: dict[str, int]) -> None:
        """A change to a table without a primary key, whose REPLICA IDENTITY FULL sends the
        whole old row: one row holding those values (of several equal ones, any) is found
        by its physical place. Values are compared in their text form, cast by the type
        first (every type has one; json has no equality)."""
        self._flush(table.name)
        known = set(table.column_names)
        columns = tuple(c for c in old if c in known)

        def build() -> sql.Composable:
            relation = self.relation(table.name)
            match = sql.SQL(" AND ").join(
                sql.SQL("t.{}::text IS NOT DISTINCT FROM %s::text::{}::text").format(
                    sql.Identifier(c), sql.SQL(self._type(table, c))) for c in columns)
            found = sql.SQL("(SELECT t.ctid FROM {} AS t WHERE {} LIMIT 1)").format(
                relation, match)
            if kind == "delete":
                return sql.SQL("DELETE FROM {} WHERE ctid = {}").format(relation, found)
            return sql.SQL("UPDATE {} SET {} WHERE ctid = {}").format(
                relation, sql.SQL(", ").join(
                    sql.SQL("{} = %s::text::{}").format(sql.Identifier(n),
                                                        sql.SQL(self._type(table, n)))
                    for n in names), found)

        self.present.pop(table.name, None)  # its keys can no longer be told
        self._send(("unkeyed", kind, table.name, names, columns), build,
                   [*values, *(old[c] for c in columns)], counted, table.name)

    def empty(self, names: list[str], counts: Counts) -> None:
        """A TRUNCATE, as DELETEs children first (no table lock beyond what writers take)."""
        for name in sorted(names, key=lambda n: -self.order[n]):
            self._flush(name)
            self.present.get(name, set()).clear()
            def build(name: str = name) -> sql.Composable:
                return sql.SQL("DELETE FROM {}").format(self.relation(name))

            self._send(("empty", name), build, [], counts.deleted, name)
        names.clear()

    def _queue(self, table: Table, ops: list[_Op], keys: list[tuple[Any, ...]] | None) -> None:
        """Add one change's statements (kind, columns, values, where counted) to its table's
        batch; `keys`: the rows it touches (None: any row, so it is sent on its own)."""
        batch = self._batches.get(table.name)
        if batch is not None and keys is not None and ops[0][0] == "delete" and all(
                batch.keys.get(k) == "delete" for k in keys):
            return  # deleted already: a row that left the scope, changed again elsewhere
        if batch is not None and (keys is None or not batch.keys.keys().isdisjoint(keys)):
            self._flush(table.name)
            batch = None
        if batch is None:
            batch = self._batches[table.name] = _Batch()
        for kind, names, values, counted in ops:
            batch.groups.setdefault((kind, names), (counted, []))[1].append(values)
        batch.keys.update(dict.fromkeys(keys or (), ops[-1][0]))
        batch.size += 1
        if keys is None or batch.size >= self.ROWS or not self.unconstrained:
            self._flush(table.name)

    def _flush(self, name: str) -> None:
        """Send a table's batch: one statement per kind and column set, kinds in order."""
        batch = self._batches.pop(name, None)
        if batch is None:
            return
        table = self.tables[name]
        for (kind, names), (counted, rows) in sorted(
                batch.groups.items(), key=lambda item: self.KINDS.index(item[0][0])):
            def build(kind: str = kind, names: tuple[str, ...] = names) -> sql.Composable:
                return self._set_based(table, kind, names)

            self._send(("batch", kind, name, names), build,
                       [orjson.dumps(column).decode() for column in zip(*rows, strict=True)],
                       counted, name)

    def _set_based(self, table: Table, kind: str, names: tuple[str, ...]) -> sql.Composable:
        """The statement applying many changes of one kind and column set: each parameter
        is a column (values, then primary-key values) as a JSON array of text or null, the
        columns zipped as rows `u` (JSON because psycopg quotes a text[] element by element
        in Python; orjson writes the whole column in C)."""
        key = table.primary_key if kind != "insert" else []
        columns = [*names, *key]
        aliases = [sql.Identifier(f"c{i}") for i in range(len(columns))]

        def value(index: int) -> sql.Composable:
            return sql.SQL("u.{}::{}").format(aliases[index],
                                               sql.SQL(self._type(table, columns[index])))

        rows = sql.SQL("ROWS FROM ({}) AS u({})").format(
            sql.SQL(", ").join(sql.SQL("json_array_elements_text(%s::json)") for _ in columns),
            sql.SQL(", ").join(aliases))
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = {}").format(sql.Identifier(c), value(len(names) + i))
            for i, c in enumerate(key))
        relation = self.relation(table.name)
        values = sql.SQL(", ").join(value(i) for i in range(len(names)))
        if kind == "delete":
            return sql.SQL("DELETE FROM {} AS t USING {} WHERE {}").format(relation, rows, match)
        if kind == "update":
            return sql.SQL("UPDATE {} AS t SET {} FROM {} WHERE {}").format(
                relation, sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n),
                                                                       value(i))
                                             for i, n in enumerate(names)), rows, match)
        statement = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}"
                            ).format(relation, sql.SQL(", ").join(map(sql.Identifier, names)),
                                     values, rows)
        if kind == "join":
            statement += sql.SQL(" WHERE NOT EXISTS (SELECT FROM {} AS t WHERE {})").format(
                relation, match)
        return statement


# One statement of a change: (kind, columns, values, where its rows are counted).
_Op = tuple[str, tuple[str, ...], list[Any], dict[str, int]]


@dataclass
class _Batch:
    """A table's waiting changes: per (kind, columns), where they are counted and their
    values; the keys they touch, each with the last kind of change to it."""

    groups: dict[tuple[str, tuple[str, ...]], tuple[dict[str, int], list[list[Any]]]] = field(
        default_factory=dict)
    keys: dict[tuple[Any, ...], str] = field(default_factory=dict)
    size: int = 0


def _has_old_row(key: dict[str, str | None] | None, row: dict[str, str | None]) -> bool:
    """Whether an UPDATE's `key` is the old row REPLICA IDENTITY FULL sends (not the new row
    standing in for a key the change did not carry)."""
    return bool(key) and key is not row


def _keys_of(table: Table,
             *rows: dict[str, str | None]) -> list[tuple[str | None, ...]] | None:
    """The primary keys of these rows; None when one lacks its key (then: any row)."""
    if not table.primary_key or any(c not in row for row in rows for c in table.primary_key):
        return None
    return [tuple(row[c] for c in table.primary_key) for row in rows]


def apply(target: Target, transactions: Iterable[Transaction], counts: Counts,
          member: Member | None = None,
          begin: Callable[[Transaction], None] | None = None) -> None:
    """Apply each transaction's changes to `target`, counting rows per table. `member`
    (a tenant's scope) says whether a change's row is the scope's: changes of other rows
    are skipped; None means its key decides (the row is the scope's if the target has it).
    `begin` is shown each transaction before its changes (membership as it commits)."""
    with target.conn.pipeline() as pipeline:
        target.pipeline = pipeline
        for tx in transactions:
            counts.transactions += 1
            if begin is not None:
                begin(tx)
            truncated: list[str] = []
            for change in tx.changes:
                table = target.table(change.table)
                if table is None:
                    continue  # not an app table the target holds (or outside the tenant)
                if change.op == "truncate":
                    truncated.append(table.name)
                    continue
                if truncated:
                    target.empty(truncated, counts)
                _apply_one(target, table, change, counts, member)
            if truncated:
                target.empty(truncated, counts)
        target.settle()
    target.pipeline = None


def _apply_one(target: Target, table: Table, change: Change, counts: Counts,
               member: Member | None) -> None:
    old = change.key or change.row or {}
    if change.op == "delete":
        target.delete(table, old, counts)
        return
    row = change.row or {}
    ours = True if member is None else member(change)
    if change.op == "insert":
        if ours:
            target.insert(table, row, counts)
        return
    # update: the row as it was may be in the target; what it became may or may not be ours
    if ours is False:
        target.delete(table, old, counts)  # it left the scope (a no-op when it never was in)
        return
    if member is not None and ours and change.unchanged and not target.has(table, old):
        # it joined the scope, but pgoutput did not send its TOASTed values: the row cannot
        # be written, and leaving it out would restore the scope without it
        key = ", ".join(str(old[c]) for c in table.primary_key)
        raise OpsError(
            f"cannot replay a change to {table.name} ({key}): the row joined the tenant by an "
            f"UPDATE that left {', '.join(change.unchanged)} "
            "unchanged (TOASTed values the change does not carry); nothing was changed",
            hint="Pick a time before that change, or take a backup of the tenant after it.")
    target.update(table, old, row, change.unchanged, counts,
                  join=member is not None and not change.unchanged)  # it joined the scope
