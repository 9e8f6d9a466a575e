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
    prepares them; rows affected are counted when the pipeline syncs."""

    BATCH = 500  # statements between syncs: bounds what waits to be counted

    def __init__(self, conn: psycopg.Connection, tables: list[Table],
                 relation: Callable[[str], sql.Composable] | None = None, *,
                 unconstrained: bool = False) -> None:
        self.conn = conn
        # relations without constraints (a tenant's stages): a delete may wait for others of
        # its table, as nothing else checks it (live tables' foreign keys check each statement)
        self.unconstrained = unconstrained
        self.tables = {t.name: t for t in tables}
        self.order = {t.name: i for i, t in enumerate(tables)}
        self.relation = relation or (lambda name: self.tables[name].ident)
        self._rendered: dict[tuple, str] = {}
        self._pending: list[tuple[dict[str, int], str, psycopg.Cursor]] = []
        # keys of rows that may have left a tenant, and where their deletions are counted
        self._gone: dict[str, tuple[dict[str, int], list[list], set[tuple]]] = {}
        self.pipeline: psycopg.Pipeline | None = None

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def _send(self, key: tuple, build: Callable[[], sql.Composable], params: list,
              counted: dict[str, int], table: str, rows: list[list] | None = None) -> None:
        """Send a statement; `rows`: the keys of the rows it touches (None: any row)."""
        gone = self._gone.get(table)
        if gone is not None and (rows is None or any(tuple(k) in gone[2] for k in rows)):
            self._forget_now(table)  # a statement on a row to delete first: keep their order
        text = self._rendered.get(key)
        if text is None:
            text = self._rendered[key] = build().as_string(self.conn)
        self._pending.append((counted, table, self.conn.execute(text, params)))
        if len(self._pending) >= self.BATCH:
            self.settle()

    def forget(self, table: Table, key: dict[str, str | None], counts: Counts) -> None:
        """Delete the row with this key, if there: sent with others of the table as one
        statement, before any statement on a row with one of their keys (so each row's
        changes keep their order; only for relations no constraint ties to others)."""
        _, found, keys = self._gone.setdefault(table.name, (counts.deleted, [], set()))
        found.append(self._key(table, key))
        keys.add(tuple(found[-1]))
        if len(found) >= self.BATCH:
            self._forget_now(table.name)

    def _forget_now(self, name: str) -> None:
        counted, keys, _ = self._gone.pop(name)
        table = self.tables[name]
        columns = list(zip(*keys, strict=True))

        def build() -> sql.Composable:
            names = [sql.Identifier(f"k{i}") for i in range(len(table.primary_key))]
            return sql.SQL("DELETE FROM {} WHERE ({}) IN (SELECT {} FROM unnest({}) AS k({}))"
                           ).format(self.relation(name),
                                    sql.SQL(", ").join(map(sql.Identifier, table.primary_key)),
                                    sql.SQL(", ").join(
                                        sql.SQL("{}::{}").format(n, sql.SQL(self._type(table, c)))
                                        for n, c in zip(names, table.primary_key, strict=True)),
                                    sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in names),
                                    sql.SQL(", ").join(names))

        text = self._rendered.get(("forget", name))
        if text is None:
            text = self._rendered[("forget", name)] = build().as_string(self.conn)
        cursor = self.conn.execute(text, [list(c) for c in columns])
        self._pending.append((counted, name, cursor))

    def settle(self) -> None:
        """Wait for what was sent and count the rows each statement affected."""
        for name in list(self._gone):
            self._forget_now(name)
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

    def _typed(self, table: Table, column: str) -> sql.Composable:
        return sql.SQL("%s::text::{}").format(sql.SQL(self._type(table, column)))

    def _key(self, table: Table, key: dict[str, str | None]) -> list:
        """The primary-key values of a change (`_where`'s parameters)."""
        if table.primary_key:
            with contextlib.suppress(KeyError):
                return [key[c] for c in table.primary_key]
        missing = [c for c in table.primary_key if c not in key]
        raise OpsError(f"a change to {table.name} does not carry its primary key "
                       f"({', '.join(missing) or 'none'}); it cannot be replayed")

    def _where(self, table: Table) -> sql.Composable:
        return sql.SQL(" AND ").join(sql.SQL("{} = {}").format(
            sql.Identifier(c), self._typed(table, c)) for c in table.primary_key)

    def insert(self, table: Table, row: dict[str, str | None], counts: Counts, *,
               unless_present: bool = False) -> None:
        """INSERT the row (`unless_present`: unless a row with its key is there)."""
        names = tuple(c.name for c in table.writable_columns if c.name in row)
        keys = self._key(table, row) if unless_present else []

        def build() -> sql.Composable:
            values = sql.SQL(", ").join(self._typed(table, n) for n in names)
            statement = sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE ").format(
                self.relation(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
            if not unless_present:
                return statement + sql.SQL("VALUES ({})").format(values)
            return statement + sql.SQL("SELECT {} WHERE NOT EXISTS (SELECT FROM {} "
                                       "WHERE {})").format(values, self.relation(table.name),
                                                           self._where(table))

        self._send(("insert", table.name, names, unless_present), build,
                   [row[n] for n in names] + keys, counts.inserted, table.name,
                   _keys_of(table, row))

    def update(self, table: Table, key: dict[str, str | None], row: dict[str, str | None],
               unchanged: tuple[str, ...], counts: Counts) -> None:
        names = tuple(c.name for c in table.writable_columns
                      if c.name in row and c.name not in unchanged)
        params = self._key(table, key)
        if not names:
            return

        def build() -> sql.Composable:
            return sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self.relation(table.name), sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(n), self._typed(table, n))
                    for n in names), self._where(table))

        self._send(("update", table.name, names), build, [row[n] for n in names] + params,
                   counts.updated, table.name, _keys_of(table, key, row))

    def delete(self, table: Table, key: dict[str, str | None], counts: Counts) -> None:
        self._send(("delete", table.name), lambda: sql.SQL("DELETE FROM {} WHERE {}").format(
            self.relation(table.name), self._where(table)), self._key(table, key),
            counts.deleted, table.name)

    def empty(self, names: list[str], counts: Counts) -> None:
        """A TRUNCATE, as DELETEs children first (no table lock beyond what writers take)."""
        for name in sorted(names, key=lambda n: -self.order[n]):
            self._send(("empty", name), lambda name=name: sql.SQL("DELETE FROM {}").format(
                self.relation(name)), [], counts.deleted, name)
        names.clear()


def _keys_of(table: Table, *rows: dict[str, str | None]) -> list[list] | None:
    """The primary keys of these rows; None when one lacks its key (then: any row)."""
    if not table.primary_key or any(c not in row for row in rows for c in table.primary_key):
        return None
    return [[row[c] for c in table.primary_key] for row in rows]


def apply(target: Target, transactions: Iterable[Transaction], counts: Counts,
          member: Member | None = None) -> None:
    """Apply each transaction's changes to `target`, counting rows per table. `member`
    (a tenant's scope) says whether a change's row is the scope's: changes of other rows
    are skipped; None means its key decides (the row is the scope's if the target has it)."""
    with target.conn.pipeline() as pipeline:
        target.pipeline = pipeline
        for tx in transactions:
            counts.transactions += 1
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
        if target.unconstrained:
            target.forget(table, old, counts)
        else:
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
        target.forget(table, old, counts)  # it left the scope (a no-op when it never was in)
        return
    target.update(table, old, row, change.unchanged, counts)
    if member is not None and not change.unchanged:
        target.insert(table, row, counts, unless_present=True)  # it joined the scope
