"""`restore --at TIME` and `restore --tenant X --at TIME`: the newest complete backup taken
before TIME that holds what is asked, then the changes committed up to TIME from the change
segments, all in the one transaction the restore already uses.

Which changes: exactly those the backup's snapshot does not hold (meta "capture": the
snapshot, and the WAL position read just before it, where the first needed segment starts),
committed at or before TIME, in LSN order, each once. A transaction the snapshot missed while
it was committing ("committedInSnapshot") may have its commit before that position: it is
looked for in the segments just before, and applied first. Segments must follow each other
without a gap from that position to TIME, at the backup's schema revision (capture takes a full
backup after every migration, so a time after one picks that backup); otherwise the restore
refuses naming the range that is covered, before anything is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ops.backup.archive import FULL, Archive, Facts
from ops.backup.encryption import identities_for
from ops.backup.files import BackupFile, utc_now
from ops.backup.segment_files import LOOK_BACK, commit_time, walk_back
from ops.capture.coverage import Coverage, coverage, covered_until, when
from ops.capture.segments import (
    Change,
    Origin,
    SegmentInfo,
    Transaction,
    lsn_text,
    parse_lsn,
    read_segment,
    segment_facts,
)
from ops.core.catalog import Table
from ops.core.config import Settings
from ops.core.db import scalar
from ops.core.errors import NotFound, OpsError, UsageError
from ops.core.output import SILENT, Reporter, suggest
from ops.core.tenancy import TenantScope
from ops.restore.apply import Replay, RestoreResult, restore
from ops.restore.replay import Counts, Snapshot, Target, apply, wanted
from ops.restore.staging import Stage
from ops.restore.tenant import restore_tenant

LATEST = "latest"
_OFFSET = re.compile(r"^-(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_at(text: str, now: datetime | None = None) -> datetime | None:
    """The moment `--at` names: ISO 8601 with a zone, `-15m`/`-2h`/`-30s`/`-1d` before now,
    or `latest` (None: the last change stored)."""
    text = text.strip()
    if text == LATEST:
        return None
    offset = _OFFSET.match(text)
    try:  # (a date out of the calendar, before year 1 or after 9999, is no time either)
        if offset:
            return (now or utc_now()) - timedelta(**{_UNITS[offset[2]]: int(offset[1])})
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise UsageError(f"--at {text!r} is not a time this tool can place",
                     hint="Give ISO 8601 with a zone (2026-12-07T14:32:00Z, "
                     "…+01:00), an offset before now (-15m, -2h), or latest.")


@dataclass
class ReplayPlan:
    """What a point-in-time restore will use."""

    backup: BackupFile
    facts: Facts
    snapshot: Snapshot
    at: datetime  # the target time (latest: the last change stored)
    segments: list[SegmentInfo] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    # before walLsn: the segments holding commits the snapshot missed as they happened
    # (meta "committedInSnapshot"), and those transactions, applied first
    earlier: list[SegmentInfo] = field(default_factory=list)
    racing: list[Transaction] = field(default_factory=list)

    @property
    def origin(self) -> Origin | None:
        """The database whose changes may be applied (None: a backup that does not say)."""
        return Origin.of_backup(self.facts.capture)

    def as_json(self) -> dict[str, Any]:
        return {"backup": self.backup.name, "at": self.at.isoformat(),
                "snapshotTime": self.facts.capture.get("snapshotTime") if self.facts.capture
                else None,
                "segments": [s.name for s in [*self.earlier, *self.segments]],
                "transactions": self.counts.transactions, "tables": self.counts.as_json()}


def plan_replay(archive: Archive, at: datetime | None, *, tenant: str | None = None,
                identities: Sequence[Any] = ()) -> ReplayPlan:
    """Pick the backup and the segments for TIME (None: the last change stored); refuse,
    naming the covered range, what cannot be restored exactly. `identities` read encrypted
    segments (those before the backup's start are read here when it needs them)."""
    cover = coverage(archive)
    moment = at or cover.end
    if moment is None:
        raise NotFound(f"no change segments in {archive}: there is no change to restore to",
                       hint=f"Run {suggest('capture')} to record changes between backups.")

    def before(found: BackupFile, facts: Facts) -> bool:
        taken = commit_time((facts.capture or {}).get("snapshotTime"))
        return taken is not None and taken <= moment and bool((facts.capture or {}).get(
            "walLsn"))

    if tenant is None:
        backup = archive.latest(kinds=(FULL,), accept=before, prefer_verified=False)
    else:
        backup = archive.latest_for_tenant(tenant, accept=before, prefer_verified=False,
                                           identities=identities)
    if backup is None:
        raise NotFound(f"no complete backup {'holding tenant ' + tenant + ' ' if tenant else ''}"
                       f"taken before {when(moment)} records where change replay starts",
                       hint=f"Changes are covered from {cover.describe()}; backups taken by "
                       "this version record their start: pick a later time, or take a "
                       f"backup ({suggest('backup')}).")
    facts = archive.facts(backup)
    capture = facts.capture or {}
    plan = ReplayPlan(backup, facts, Snapshot.parse(str(capture.get("snapshot"))), moment)
    plan.segments = _chain(archive, cover, parse_lsn(str(capture["walLsn"])), moment,
                           facts.revision)
    if capture.get("committedInSnapshot"):
        _find_racing(archive, cover, plan, identities)
    return plan


def _find_racing(archive: Archive, cover: Coverage, plan: ReplayPlan,
                 identities: Sequence[Any]) -> None:
    """The transactions the backup's snapshot missed while they were committing (meta
    "committedInSnapshot"). Those committed at or after walLsn, before "committedBy", are in
    the chain's first segments (applied with it); the others' commits precede walLsn: they
    are looked for in the segments before it, newest first, back to LOOK_BACK before the
    snapshot. Refuses naming them and the range searched when one is in neither."""
    capture = plan.facts.capture or {}
    wal = parse_lsn(str(capture["walLsn"]))
    missing = {int(x) for x in capture["committedInSnapshot"]}
    revision, searched_from = plan.facts.revision, wal

    def read(seg: SegmentInfo) -> list[Transaction]:
        return [tx for tx in read_segment(archive, seg, identities=identities,
                                          revision=revision, origin=plan.origin)
                if plan.snapshot.widen(tx.xid) in missing]

    by = parse_lsn(str(capture.get("committedBy") or capture["walLsn"]))
    for seg in cover.segments:
        if not missing or seg.start_lsn >= by:
            break
        if seg.end_lsn > wal:
            missing -= {plan.snapshot.widen(tx.xid) for tx in read(seg)}
    since = (commit_time(capture.get("snapshotTime")) or plan.at) - LOOK_BACK
    found: list[Transaction] = []
    for seg in walk_back(cover.segments, wal, since, archive.segment_facts):
        if not missing or seg.revision not in (None, revision):
            break  # all found; or a migration: the backup's schema starts after it
        searched_from = seg.start_lsn
        txs = read(seg)
        missing -= {plan.snapshot.widen(tx.xid) for tx in txs}
        if txs:
            plan.earlier.insert(0, seg)
            found[:0] = txs
    if missing:
        raise OpsError(
            f"cannot restore to {when(plan.at)}: transaction(s) "
            f"{', '.join(map(str, sorted(missing)))} committed as backup {plan.backup.name} "
            f"took its snapshot, which does not hold them, and no change segment from "
            f"{lsn_text(searched_from)} to {lsn_text(by)} holds them; nothing was changed",
            hint=f"Replay looks for them back to {when(since)}, "
            f"{LOOK_BACK.total_seconds() / 60:g} minutes before the backup (a commit that "
            "waited longer for a synchronous standby is not searched for). Pick a time after "
            "the next backup.")
    plan.racing = sorted(found, key=lambda tx: tx.lsn)


# A commit's timestamp is taken before its record is written, so a commit stamped earlier
# may follow a later-stamped one in the log: a segment whose first commit is stamped after
# TIME may still hold one stamped before it (a busy server's WAL insert waits: milliseconds).
COMMIT_SKEW = timedelta(seconds=1)


def _chain(archive: Archive, cover: Coverage, start: int, moment: datetime,
           revision: str | None) -> list[SegmentInfo]:
    """The segments from `start` that hold every change committed up to `moment`, without a
    gap (and those starting within COMMIT_SKEW after it); refuses naming the covered range
    otherwise."""
    chain: list[SegmentInfo] = []
    position: int | None = None

    def refuse(why: str) -> OpsError:
        return OpsError(f"cannot restore to {when(moment)}: {why}; nothing was changed",
                        hint=f"Changes are covered from {cover.describe()}"
                        + (f" (gaps: {', '.join(f'{a}..{b}' for a, b in cover.gaps)})"
                           if cover.gaps else "") + ".")

    for seg in cover.segments:
        if seg.end_lsn <= start or (position is not None and seg.end_lsn <= position):
            continue  # before the backup, or a range stored already
        if position is None and seg.start_lsn > start:
            raise refuse(f"the changes from {lsn_text(start)} (the backup's start) to "
                         f"{lsn_text(seg.start_lsn)} are missing")
        if position is not None and seg.start_lsn > position:
            raise refuse(f"the changes from {lsn_text(position)} to "
                         f"{lsn_text(seg.start_lsn)} are missing (a segment is lost)")
        seg = segment_facts(archive, seg)
        if seg.first_commit is not None and seg.first_commit > moment and (
                seg.first_commit > moment + COMMIT_SKEW
                or seg.revision not in (None, revision)):
            return chain  # every change up to the moment is in the segments before
        if revision is not None and seg.revision not in (None, revision):
            raise refuse(f"the schema changed (to {seg.revision}) between the backup and "
                         "that time")
        chain.append(seg)
        position = seg.end_lsn
    until = covered_until(chain[-1]) if chain else cover.end
    if until is None or until < moment:
        raise refuse("it is after the last stored change")
    return chain


def transactions(archive: Archive, plan: ReplayPlan,
                 identities: Sequence[Any]) -> Iterator[Transaction]:
    """The plan's transactions to apply, in order, each once."""
    revision = plan.facts.revision

    def stream() -> Iterator[Transaction]:
        yield from plan.racing  # before walLsn, so before every transaction of the chain
        for seg in plan.segments:
            yield from read_segment(archive, seg, identities=identities, revision=revision,
                                    origin=plan.origin)

    return wanted(stream(), plan.snapshot, lambda tx: tx.commit_time <= plan.at)


# -- the two restores ----------------------------------------------------------------------


@dataclass
class AtTimeResult:
    restore: RestoreResult
    plan: ReplayPlan

    def as_json(self) -> dict[str, Any]:
        return {"pointInTime": self.plan.as_json(), "dryRun": self.restore.dry_run,
                "restoredRows": self.restore.total_rows, "seconds": self.restore.seconds,
                "safetyBackup": self.restore.safety_backup}


def restore_at(settings: Settings, at: str, *, tenant: str | None = None,
               archive: Archive | None = None, identity: str | Path | None = None,
               dry_run: bool = False, report: Reporter = SILENT,
               **options: Any) -> AtTimeResult:
    """Restore the database (or, with `tenant`, that tenant's rows) as it was at `at`."""
    archive = archive or Archive.from_settings(settings)
    identities = identities_for(settings, identity)
    plan = plan_replay(archive, parse_at(at), tenant=tenant, identities=identities)
    report.line(f"🕐 Restoring to {when(plan.at)} from {plan.backup.name} and "
                f"{len(plan.earlier) + len(plan.segments)} change segment(s)")
    if tenant is None:
        result: RestoreResult = restore(
            settings, plan.backup.ref, archive=archive, identity=identities, dry_run=dry_run,
            replay=_full_replay(archive, plan, identities, dry_run), report=report, **options)
    else:
        result = restore_tenant(
            settings, plan.backup.ref, tenant, archive=archive, identity=identities,
            dry_run=dry_run, replay=_tenant_replay(archive, plan, identities), report=report,
            **options)
    counts = plan.counts
    report.line(f"🔁 Changes {'to apply' if dry_run else 'applied'}: {counts.transactions} "
                f"transactions; " + (", ".join(
                    f"{t} +{c['inserted']} ~{c['updated']} -{c['deleted']}"
                    for t, c in counts.as_json().items()) or "no rows"))
    return AtTimeResult(result, plan)


def _full_replay(archive: Archive, plan: ReplayPlan, identities: Sequence[Any],
                 dry_run: bool) -> Replay:
    def replay(conn: psycopg.Connection, tables: list[Table]) -> None:
        txs = transactions(archive, plan, identities)
        if dry_run:  # nothing was loaded: count what each change would do
            _count(txs, plan.counts, {t.name for t in tables})
            return
        always = [(t, c.name) for t in tables for c in t.columns if c.identity == "a"]
        _identity_generation(conn, always, "BY DEFAULT")
        apply(Target(conn, tables), txs, plan.counts)
        _identity_generation(conn, always, "ALWAYS")
    return replay


def _identity_generation(conn: psycopg.Connection, columns: list[tuple[Table, str]],
                         generated: str) -> None:
    """Make GENERATED ALWAYS identity columns take the values the changes carry (an UPDATE
    may set one only to DEFAULT), and ALWAYS again after: within the restore's transaction,
    on tables it holds locked, so nobody else sees the difference."""
    for table, column in columns:
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET GENERATED {}").format(
            table.ident, sql.Identifier(column), sql.SQL(generated)))


def _count(txs: Iterator[Transaction], counts: Counts, tables: set[str]) -> None:
    which = {"insert": counts.inserted, "update": counts.updated, "delete": counts.deleted}
    for tx in txs:
        counts.transactions += 1
        for change in tx.changes:
            if change.table in tables and change.op in which:
                counts.add(which[change.op], change.table, 1)


def _tenant_replay(archive: Archive, plan: ReplayPlan, identities: Sequence[Any]) -> Replay:
    def replay(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
               tenant_id: int) -> None:
        for stage in stages.values():  # replay finds rows by key: without an index, a scan
            if stage.table.primary_key:
                conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(
                    stage.ident, sql.SQL(", ").join(map(sql.Identifier,
                                                        stage.table.primary_key))))
        target = Target(conn, scope.tables, lambda name: stages[name].ident,
                        unconstrained=True, present=stage_keys(conn, stages))
        member = _Membership(target, scope, stages, tenant_id)
        apply(target, transactions(archive, plan, identities), plan.counts, member,
              member.begin)
        for stage in stages.values():
            stage.rows = scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(stage.ident))
    return replay


# Keys of staged rows held in memory to skip changes to rows a stage does not hold (about
# 150 bytes each); a tenant with more rows has its larger tables' changes sent as statements.
STAGE_KEYS = 500_000
# Key types whose text form is one per value whatever the session's settings, so a key read
# from a stage compares equal to the one a change carries (a timestamp's depends on TimeZone
# and DateStyle): tables keyed otherwise have their changes sent as statements.
PLAIN_KEY_TYPES = frozenset({"smallint", "integer", "bigint", "uuid", "text"})


def stage_keys(conn: psycopg.Connection,
               stages: dict[str, Stage]) -> dict[str, set[tuple[Any, ...]]]:
    """The primary keys (text form, as changes carry them) of each stage's rows, smallest
    stages first while they fit STAGE_KEYS."""
    present: dict[str, set[tuple[Any, ...]]] = {}
    budget = STAGE_KEYS
    for stage in sorted(stages.values(), key=lambda s: s.rows):
        key = stage.table.primary_key
        types = {c.name: c.type for c in stage.table.columns}
        if not key or stage.rows > budget or not PLAIN_KEY_TYPES.issuperset(
                types[c] for c in key):
            continue
        budget -= stage.rows
        present[stage.table.name] = {tuple(row) for row in conn.execute(
            sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) for c in key), stage.ident))}
    return present


class _Membership:
    """Whether a change's row is the tenant's, decided as the tenant restore decides it (its
    tenant id, or the key placing it in a row of the tenant), with the keys of the tenant's
    rows kept up to date as changes add and remove rows.

    A row placed through a parent is the parent's tenant's as the transaction commits (the
    keys are deferrable: a child may come before its parent), so each transaction is read
    first for the parents it leaves in or out of the tenant (`begin`). A parent leaving the
    tenant takes the rows placed through it out of the stages; a parent joining it by an
    UPDATE brings rows the stages never held (another tenant's at the backup): replay
    refuses rather than leave them out."""

    def __init__(self, target: Target, scope: TenantScope, stages: dict[str, Stage],
                 tenant_id: int) -> None:
        self.target, self.conn = target, target.conn  # settled before rows leave the stages
        self.scope, self.stages, self.tenant = scope, stages, str(tenant_id)
        self.keys: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}
        self.ending: dict[tuple[str, tuple[str, ...]], dict[tuple[Any, ...], bool]] = {}
        for place in scope.placements.values():
            via = place.via
            if via is not None and (via.ref_table, via.ref_columns) not in self.keys:
                self.keys[(via.ref_table, via.ref_columns)] = self._read_keys(
                    via.ref_table, via.ref_columns)
        self.parents = frozenset(table for table, _ in self.keys)

    def _read_keys(self, table: str, columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
        return set(self.conn.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
            self.stages[table].ident)).fetchall())

    def _parent_keys(self, name: str) -> list[tuple[tuple[str, ...], set[tuple[Any, ...]]]]:
        return [(columns, found) for (table, columns), found in self.keys.items()
                if table == name]

    def begin(self, tx: Transaction) -> None:
        """Which parents the transaction leaves in the tenant (True) or out of it (False)."""
        self.ending = {}
        parents = self.parents
        if not any(change.table in parents for change in tx.changes):
            return  # most transactions: no parent row changes
        for _ in range(len(self.scope.placements)):  # a level of placements per round
            before = {parent: dict(keys) for parent, keys in self.ending.items()}
            for change in tx.changes:
                if change.table not in parents or change.op not in ("insert", "update",
                                                                    "delete"):
                    continue
                ours = False if change.op == "delete" else self._ours(change)
                row = change.row if change.op != "delete" else change.key
                for columns, _ in self._parent_keys(change.table):
                    if ours is not None and row and all(c in row for c in columns):
                        self.ending.setdefault((change.table, columns), {})[
                            tuple(row[c] for c in columns)] = ours
            if self.ending == before:
                break

    def _ours(self, change: Change) -> bool | None:
        row = change.row or {}
        name = change.table
        via = self.scope.via(name)
        columns = self.scope.membership_columns(name)
        if any(c not in row for c in columns):
            return None
        if via is None:
            return row[columns[0]] == self.tenant
        parent = (via.ref_table, via.ref_columns)
        key = tuple(row[c] for c in columns)
        ending = self.ending.get(parent, {})
        return ending[key] if key in ending else key in self.keys[parent]

    def __call__(self, change: Change) -> bool | None:
        name = change.table
        if name not in self.scope.placements:
            return False
        ours = self._ours(change)
        if ours is None or name not in self.parents:
            return ours
        row = change.row or {}
        old = {**row, **(change.key or {})}
        for columns, found in self._parent_keys(name):
            if not all(c in row and c in old for c in columns):
                continue
            was, now = tuple(old[c] for c in columns), tuple(row[c] for c in columns)
            if ours:
                if change.op == "update" and was not in found:
                    self._refuse_join(name, was)
                found.add(now)
            elif was in found or now in found:
                found.discard(was)
                found.discard(now)
                self._leave(name, columns, was)
        return ours

    def _refuse_join(self, name: str, key: tuple[Any, ...]) -> None:
        placed = sorted(p.table.name for p in self.scope.placements.values()
                        if p.via is not None and p.via.ref_table == name)
        raise OpsError(
            f"cannot replay tenant {self.tenant}'s changes: a {name} row ({', '.join(key)}) "
            f"joined the tenant from another one by an UPDATE, and the rows placed through it "
            f"({', '.join(placed)}) were not the tenant's at the backup, so replay cannot "
            "bring them; nothing was changed",
            hint="Pick a time before that change, or take a backup after it "
            f"({suggest('backup --tenant ' + self.tenant)}) to restore to later times.")

    def _leave(self, name: str, columns: tuple[str, ...], key: tuple[Any, ...]) -> None:
        """Take out of the stages the rows placed through the row `key` of `name`, which left
        the tenant (they leave with it), children before their own children's keys are read."""
        self.target.settle()  # the changes before this one, first
        for place in self.scope.placements.values():
            via = place.via
            if via is None or via.ref_table != name or via.ref_columns != columns:
                continue
            child = place.table.name
            gone = self.conn.execute(sql.SQL(
                "DELETE FROM {} WHERE ({}) = ({}) RETURNING 1").format(
                self.stages[child].ident,
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c))
                                   for c in via.columns),
                sql.SQL(", ").join(sql.Literal(v) for v in key))).fetchall()
            if gone:
                self.target.present.pop(child, None)  # its keys can no longer be told
                for ref_columns, found in self._parent_keys(child):
                    stale = set(found)
                    found.clear()
                    found.update(self._read_keys(child, ref_columns))
                    for lost in stale - found:
                        self._leave(child, ref_columns, lost)
