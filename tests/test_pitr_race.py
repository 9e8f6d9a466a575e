"""Consistent start under a racing commit (#27 item 3, "none twice, none missed"): a commit
writes its WAL record, is marked committed, may wait for a synchronous standby, and only
then becomes visible. A backup whose walLsn is read after that record but whose snapshot is
taken before the transaction becomes visible misses it, while replay from walLsn never reads
the segment holding it. The backup records such transactions; replay looks for them before
walLsn; prune keeps where it looks."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql
from support.backup import load
from support.capture import drain, drop_slot, origin_of, slot_name
from support.restore import table_hashes
from support.tenants import SYSTECH, insert_two_tenants, tenant_hashes

from ops.backup import create
from ops.backup.archive import Archive
from ops.backup.create import backup, locked_snapshot, write_backup
from ops.backup.files import utc_now
from ops.backup.prune import prune
from ops.capture.segments import (
    Change,
    SegmentInfo,
    Transaction,
    parse_lsn,
    read_segment,
    segment_facts,
    write_segment,
)
from ops.core.config import Settings
from ops.core.db import scalar
from ops.core.errors import OpsError
from ops.core.output import Reporter
from ops.dev.cluster import start_throwaway
from ops.restore.at_time import plan_replay, restore_at
from ops.restore.replay import Snapshot


@dataclass
class Raced:
    xid: int  # 64-bit, as the snapshot has it
    capture: dict
    segment: SegmentInfo  # the one holding the raced commit: it ends before walLsn
    after: dict  # the database's tables at the end


def _holding(archive: Archive, xid: int) -> SegmentInfo:
    return next(s for s in archive.segments()
                if any(tx.xid == xid & 0xFFFFFFFF for tx in read_segment(archive, s)))


@pytest.fixture
def raced(settings: Settings, conn: psycopg.Connection, db_url: str,
          backup_dir: Path) -> Iterator[Raced]:
    """The race, made deterministic: the backup's snapshot is taken while two transactions
    are open; one commits and its segment is stored, and only then is walLsn read (as a
    backup reading walLsn just after a commit record, and its snapshot before that commit
    became visible, records them); the other commits after walLsn, before the backup's
    check. The backup is written by the real writer with the capture block the backup
    records for them; the second one's segment follows."""
    insert_two_tenants(conn, volume=0)
    archive = Archive.at(backup_dir)
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        with psycopg.connect(db_url) as racer, psycopg.connect(db_url) as later, \
                psycopg.connect(db_url, autocommit=True) as reader:
            racer.execute("UPDATE tasks SET title = 'raced' WHERE id = 20")
            later.execute("UPDATE tasks SET title = 'after' WHERE id = 10")
            xids = [scalar(c, "SELECT pg_current_xact_id()::text::bigint")
                    for c in (racer, later)]
            with locked_snapshot(reader):
                snapshot = scalar(reader, "SELECT pg_current_snapshot()::text")
                taken = scalar(reader, "SELECT clock_timestamp()")
                racer.commit()
                drain(settings, slot, initial_backup=False)
                # the insert position: past the commit record even with synchronous_commit off
                wal = scalar(reader, "SELECT pg_current_wal_insert_lsn()::text")
                later.commit()
                capture = {"snapshot": snapshot, "walLsn": wal,
                           "snapshotTime": taken.astimezone(UTC).isoformat(),
                           "committedInSnapshot": xids, "committedBy": scalar(
                               reader, "SELECT pg_current_wal_insert_lsn()::text")}
                write_backup(reader, archive.new_ref(utc_now()), capture=capture)
        drain(settings, slot, initial_backup=False)
        yield Raced(xids[0], capture, _holding(archive, xids[0]), table_hashes(conn))
    finally:
        drop_slot(db_url, slot)


def test_a_commit_the_snapshot_missed_before_wal_lsn_is_replayed(
        settings: Settings, conn: psycopg.Connection, raced: Raced) -> None:
    snapshot = Snapshot.parse(raced.capture["snapshot"])
    assert not snapshot.holds(raced.xid & 0xFFFFFFFF)  # its rows are not in the backup
    assert raced.segment.end_lsn <= parse_lsn(raced.capture["walLsn"])  # replay's old start
    restore_at(settings, "latest", safety_backup=False)
    assert table_hashes(conn) == raced.after  # both titles, each once
    shown = restore_at(settings, "latest", dry_run=True).as_json()["pointInTime"]
    assert shown["segments"][0] == raced.segment.name  # listed like the others, first
    assert shown["transactions"] == 2


def test_a_tenant_restore_takes_the_raced_commit_too(
        settings: Settings, conn: psycopg.Connection, raced: Raced) -> None:
    then = tenant_hashes(conn, SYSTECH)  # both raced tasks are SysTech's
    plan = restore_at(settings, "latest", tenant="SysTech", safety_backup=False).plan
    assert [s.name for s in plan.earlier] == [raced.segment.name]
    assert tenant_hashes(conn, SYSTECH) == then


def test_a_raced_commit_in_no_segment_is_refused_naming_it(
        settings: Settings, conn: psycopg.Connection, raced: Raced,
        backup_dir: Path) -> None:
    for path in backup_dir.glob(raced.segment.name + "*"):
        path.unlink()
    conn.execute("UPDATE tasks SET title = 'changed since' WHERE id = 20")
    before = table_hashes(conn)
    with pytest.raises(OpsError) as refused:
        restore_at(settings, "latest", safety_backup=False)
    message = refused.value.message  # the one committed after walLsn is found: not named
    assert f"transaction(s) {raced.xid} committed" in message
    assert "nothing was changed" in message
    assert f"to {raced.capture['committedBy']}" in message  # the range searched
    assert "\n" not in message
    assert table_hashes(conn) == before


def test_prune_keeps_the_segments_before_a_backup_that_replay_searches(
        settings: Settings, raced: Raced, backup_dir: Path) -> None:
    """The segments LOOK_BACK before the snapshot stay; one wholly older goes."""
    archive = Archive.at(backup_dir)
    first = min(archive.segments(), key=lambda s: s.start_lsn)
    old = Transaction(7, first.start_lsn - 0x80, first.start_lsn - 0x40,
                      datetime.fromisoformat(raced.capture["snapshotTime"])
                      - timedelta(minutes=11),
                      [Change("update", "tasks", {"id": "10", "title": "old"})])
    stale = write_segment(archive, [old], start_lsn=first.start_lsn - 0x100,
                          end_lsn=first.start_lsn,
                          revision=segment_facts(archive, first).revision,
                          origin=origin_of(settings))
    deleted = prune(archive, keep=1, yes=True).segments_deleted
    assert deleted == [stale.name]
    assert raced.segment.name in {s.name for s in archive.segments()}
    restore_at(settings, "latest", dry_run=True)  # what replay reads is all there


def test_a_backup_no_commit_races_records_none_and_replay_reads_from_its_start(
        settings: Settings, conn: psycopg.Connection, db_url: str,
        backup_dir: Path) -> None:
    insert_two_tenants(conn, volume=0)
    archive = Archive.at(backup_dir)
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        conn.execute("UPDATE tasks SET title = 'before' WHERE id = 20")
        drain(settings, slot, initial_backup=False)
        result = backup(settings)
        conn.execute("UPDATE tasks SET title = 'after' WHERE id = 10")
        drain(settings, slot, initial_backup=False)
    finally:
        drop_slot(db_url, slot)
    capture = load(result.path)["meta"]["capture"]
    assert "committedInSnapshot" not in capture and "committedBy" not in capture
    wal = parse_lsn(capture["walLsn"])
    assert any(s.end_lsn <= wal for s in archive.segments())  # there is one to skip
    plan = plan_replay(archive, None)
    assert plan.earlier == [] and plan.racing == []
    assert plan.segments and all(s.end_lsn > wal for s in plan.segments)


# --- the race on a real server: a commit waiting for a synchronous standby -----------------


@pytest.fixture(scope="module")
def stalling() -> Iterator[Settings]:
    """A cluster of its own (never the shared one) where every commit waits for a
    synchronous standby that does not exist: committed and marked so, still invisible."""
    base = Path(tempfile.mkdtemp(prefix="tasklets-pgsync-"))
    os.chmod(base, 0o755)
    cluster = start_throwaway(base)
    try:
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            admin.execute("CREATE TABLE raced (id int PRIMARY KEY, note text)")
            admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
            admin.execute("SELECT pg_reload_conf()")
        yield Settings(database_url=cluster.url, backup_dir=base / "backups", app_env="test")
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Stalled:
    xid: int
    pid: int
    committer: threading.Thread

    def release(self, url: str) -> None:
        """Cancel its wait: the commit stays committed, and becomes visible."""
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", (self.pid,))
        self.committer.join(timeout=30)
        assert not self.committer.is_alive()


@contextlib.contextmanager
def stalled_commit(url: str, row: int) -> Iterator[Stalled]:
    """A transaction inserting `row`, its COMMIT waiting (in a thread) for the standby."""
    writer = psycopg.connect(url)
    writer.execute("SET synchronous_commit = on")
    writer.execute("INSERT INTO raced VALUES (%s, 'stalled')", (row,))
    xid = scalar(writer, "SELECT pg_current_xact_id()::text::bigint")
    stalled = Stalled(xid, writer.info.backend_pid, threading.Thread(target=writer.commit))
    stalled.committer.start()
    try:
        with psycopg.connect(url, autocommit=True) as watch:
            for _ in range(200):
                if scalar(watch, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND "
                          "wait_event = 'SyncRep'", (stalled.pid,)):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the commit never waited for the synchronous standby")
            # committed, yet "in progress" to pg_xact_status while in the ProcArray
            assert scalar(watch, "SELECT pg_xact_status(%s::text::xid8)", (xid,)) \
                == "in progress"
        yield stalled
    finally:
        if stalled.committer.is_alive():
            stalled.release(url)
        writer.close()


def _pauses(monkeypatch: pytest.MonkeyPatch,
            then: object = None) -> list[float]:
    """The pauses between the backup's attempts at its start (`then` runs at each)."""
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if callable(then):
            then()
    monkeypatch.setattr(create, "time", SimpleNamespace(sleep=pause))
    return pauses


def _rows(path: Path) -> list[dict]:
    return load(path)["tables"]["raced"]


def test_a_backup_records_a_commit_still_waiting_for_a_synchronous_standby(
        stalling: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = _pauses(monkeypatch)
    with stalled_commit(stalling.database_url, 1) as stalled:
        result = backup(stalling)
    capture = load(result.path)["meta"]["capture"]
    assert len(pauses) == create.START_RETRIES  # taken again, then recorded
    assert capture["committedInSnapshot"] == [stalled.xid]
    assert parse_lsn(capture["committedBy"]) >= parse_lsn(capture["walLsn"])
    assert not Snapshot.parse(capture["snapshot"]).holds(stalled.xid & 0xFFFFFFFF)
    assert 1 not in {row["id"] for row in _rows(result.path)}  # not in the backup


def test_a_backup_warns_when_its_role_cannot_see_commits_waiting_for_a_standby(
        stalling: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(stalling.database_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS limited")
        admin.execute("CREATE ROLE limited LOGIN")
        admin.execute("GRANT SELECT ON raced TO limited")
    url = stalling.database_url.replace("postgres@", "limited@", 1)
    backup(replace(stalling, database_url=url), report=Reporter())
    assert "Grant pg_read_all_stats" in capsys.readouterr().err
    backup(stalling, report=Reporter())  # a superuser sees every session
    assert "pg_read_all_stats" not in capsys.readouterr().err


def test_the_start_is_taken_again_once_the_racing_commit_is_visible(
        stalling: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with stalled_commit(stalling.database_url, 2) as stalled:
        pauses = _pauses(monkeypatch, lambda: stalled.release(stalling.database_url))
        result = backup(stalling)
    capture = load(result.path)["meta"]["capture"]
    assert len(pauses) == 1
    assert "committedInSnapshot" not in capture
    assert Snapshot.parse(capture["snapshot"]).holds(stalled.xid & 0xFFFFFFFF)
    assert 2 in {row["id"] for row in _rows(result.path)}  # in the backup, not replayed


def _standby(url: str, names: str) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
            sql.Literal(names)))
        admin.execute("SELECT pg_reload_conf()")


def test_a_commit_waiting_for_a_standby_across_a_backup_is_replayed(
        stalling: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole race on a real server: the commit's record is before walLsn, its segment
    ends there, and restore --at latest still has its row, once."""
    url, slot = stalling.database_url, slot_name()
    _pauses(monkeypatch)  # no real pause: the commit waits on
    _standby(url, "")  # capture's own set-up commits too
    try:
        drain(stalling, slot, initial_backup=False)
        _standby(url, "nobody")
        with stalled_commit(url, 3) as stalled:
            drain(stalling, slot, initial_backup=False)  # stored before walLsn is read
            result = backup(stalling)
            stalled.release(url)
        _standby(url, "")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO raced VALUES (4, 'after')")
            drain(stalling, slot, initial_backup=False)
            now = conn.execute("SELECT * FROM raced ORDER BY id").fetchall()
            capture = load(result.path)["meta"]["capture"]
            archive = Archive.from_settings(stalling)
            assert _holding(archive, stalled.xid).end_lsn <= parse_lsn(capture["walLsn"])
            restore_at(stalling, "latest", safety_backup=False)
            assert conn.execute("SELECT * FROM raced ORDER BY id").fetchall() == now
            assert (3, "stalled") in now
    finally:
        drop_slot(url, slot)
        _standby(url, "nobody")


def test_the_start_finds_each_missed_transaction_that_committed_after_the_snapshot(
        conn: psycopg.Connection, db_url: str) -> None:
    """What the backup's start query reports, with commits placed between the snapshot and
    the check: one in the snapshot's xip and one at its xmax, both missed; one still open
    is not reported (it commits later, after walLsn). Xids are the cluster's: a transaction
    of anything else on it (autovacuum's analyze) may shift xmax or commit in the window, so
    the placement is tried again then, and only other xids are allowed among those found."""
    for attempt in range(5):
        xids, snapshot, racing = _race_once(db_url, attempt)
        if xids["in_xip"] in snapshot.xip and xids["at_xmax"] >= snapshot.xmax:
            break
    else:
        pytest.fail("five tries could not place a commit at the snapshot's xmax")
    found = {int(x) for x in racing}
    assert {xids["in_xip"], xids["at_xmax"]} <= found
    assert not found & {xids["done"], xids["open"]}


def _race_once(db_url: str, attempt: int) -> tuple[dict[str, int], Snapshot, list[str]]:
    xids = {}
    with contextlib.ExitStack() as stack:
        open_ = {name: stack.enter_context(psycopg.connect(db_url))
                 for name in ("in_xip", "done", "at_xmax", "open")}
        for number, (name, writer) in enumerate(open_.items()):
            writer.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s)",
                           (f"Race {attempt}.{number}", f"race-{attempt}-{number}"))
            xids[name] = scalar(writer, "SELECT pg_current_xact_id()::text::bigint")
            if name == "done":
                writer.commit()  # completed before the snapshot: xmax passes in_xip
        with psycopg.connect(db_url) as reader:
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = Snapshot.parse(scalar(reader, "SELECT pg_current_snapshot()::text"))
            open_["in_xip"].commit()
            open_["at_xmax"].commit()
            _, _, racing = reader.execute(create.START_SQL).fetchall()[0]
        open_["open"].rollback()
    return xids, snapshot, racing
