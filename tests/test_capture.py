"""Change capture (#27): pgoutput decoding of every operation into stored segments, the slot
advanced only after a segment is stored, refusals, migrations, status and the lag check."""

from __future__ import annotations

import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import psycopg
import pytest
from support.capture import (
    changes_of,
    drain,
    drop_slot,
    running,
    segment_ranges,
    slot_name,
    stored_transactions,
    wait_for,
)

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.capture.metrics import CaptureMetrics
from ops.capture.segments import read_segment, segment_facts
from ops.capture.service import Capture, CaptureOptions
from ops.capture.slot import CaptureRefused, lock_holder
from ops.capture.status import capture_status, check_capture_lag
from ops.core.config import Settings
from ops.core.output import Reporter

pytest_plugins = ["support.capture_fixtures"]  # the `slot` fixture


@pytest.fixture
def archive(settings: Settings) -> Archive:
    return Archive.from_settings(settings)


def _tenant(conn: psycopg.Connection, name: str = "Acme") -> int:
    return conn.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
                        (name, name.lower())).fetchone()[0]


def test_every_operation_is_stored_as_text_with_toast_unchanged_and_null(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    first = drain(settings, slot, initial_backup=False)
    assert first.progress.segments == 0  # nothing happened yet: nothing stored
    tenant = _tenant(conn)
    big = secrets.token_hex(8000)  # 16 kB, incompressible: stored out of line (TOAST)
    product = conn.execute("INSERT INTO products (tenant_id, name, description) "
                           "VALUES (%s, 'P1', %s) RETURNING id", (tenant, big)).fetchone()[0]
    conn.execute("UPDATE products SET name = 'P2' WHERE id = %s", (product,))
    conn.execute("UPDATE products SET description = NULL WHERE id = %s", (product,))
    conn.execute("DELETE FROM products WHERE id = %s", (product,))
    conn.execute("INSERT INTO tags (tenant_id, name) VALUES (%s, 'x')", (tenant,))
    conn.execute("TRUNCATE item_tags")
    with conn.transaction():  # two changes, one transaction
        conn.execute("UPDATE tenants SET name = 'Acme 2' WHERE id = %s", (tenant,))
        conn.execute("UPDATE tenants SET name = 'Acme 3' WHERE id = %s", (tenant,))

    capture = drain(settings, slot, initial_backup=False)
    assert capture.progress.segments >= 1  # more when asynchronous commits flush late
    stored = stored_transactions(archive)
    products = list(changes_of(stored, "products"))
    assert [op for op, _ in products] == ["insert", "update", "update", "delete"]
    inserted, renamed, nulled, deleted = (c for _, c in products)
    assert inserted["row"]["description"] == big and inserted["row"]["id"] == str(product)
    assert renamed["row"]["name"] == "P2" and renamed["unchanged"] == ("description",)
    assert "description" not in renamed["row"]
    assert nulled["row"]["description"] is None and nulled["unchanged"] == ()
    assert deleted["key"] == {"id": str(product)} and deleted["row"] is None
    assert [op for op, _ in changes_of(stored, "item_tags")] == ["truncate"]
    assert [len(tx.changes) for tx in stored][-1] == 2
    assert all(tx.commit_time.tzinfo is not None for tx in stored)
    assert [tx.lsn for tx in stored] == sorted(tx.lsn for tx in stored)
    # the slot stands where the stored segment ends
    end = segment_ranges(archive)[-1][1]
    state = capture_status(conn, archive, slot, slot)
    assert state.lag_seconds == 0.0 and state.oldest_pending_commit is None
    assert int(state.confirmed_lsn.split("/")[0], 16) << 32 | int(
        state.confirmed_lsn.split("/")[1], 16) == end


def test_streamed_and_sql_reads_store_the_same_transactions(
        settings: Settings, conn: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    """The two ways of reading a slot (a replication connection, the SQL functions) store the
    same transactions, changes and values."""
    slots = {"stream": slot_name(), "sql": slot_name()}
    stored: dict[str, list] = {}
    try:
        for read, name in slots.items():
            each = replace(settings, backup_dir=tmp_path / read)
            drain(each, name, initial_backup=False, read=read)
        tenant = _tenant(conn)
        big = secrets.token_hex(4000)  # TOASTed, then left unchanged by an update
        conn.execute("INSERT INTO products (tenant_id, name, description) VALUES "
                     "(%s, 'P', %s)", (tenant, big))
        conn.execute("UPDATE products SET name = 'Q' WHERE tenant_id = %s", (tenant,))
        conn.execute("DELETE FROM products WHERE tenant_id = %s", (tenant,))
        for read, name in slots.items():
            each = replace(settings, backup_dir=tmp_path / read)
            drain(each, name, initial_backup=False, read=read)
            stored[read] = [(tx.xid, tx.lsn, tx.commit_time, tx.changes)
                            for tx in stored_transactions(Archive.from_settings(each))]
        assert stored["stream"] == stored["sql"] and len(stored["sql"]) == 4
    finally:
        for name in slots.values():
            drop_slot(db_url, name)


def test_a_running_streamed_capture_shows_its_recovery_point_to_status(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    """A capture streaming its slot holds it: status reads the lag from the moment the
    capture names its session for (every change before it stored), not from a peek."""
    with running(settings, slot) as capture:
        wait_for(lambda: capture.progress.covered_until is not None, "a first cycle")
        assert capture.stream is not None  # the test server allows replication on loopback
        _tenant(conn)
        wait_for(lambda: capture.progress.transactions >= 1, "the change stored")
        state = capture_status(conn, archive, slot, slot)
        assert state.running and state.lag_seconds is not None and state.lag_seconds < 5
        assert state.oldest_pending_commit is None  # not peeked: the stream holds the slot
        assert check_capture_lag(state, "1m").ok
    assert capture_status(conn, archive, slot, slot).lag_seconds == 0.0  # stopped: peeked


def test_segments_continue_each_other_and_cut_at_the_size_limit(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    drain(settings, slot, initial_backup=False)
    tenant = _tenant(conn)
    for i in range(30):
        conn.execute("INSERT INTO tags (tenant_id, name, description) VALUES (%s, %s, %s)",
                     (tenant, f"t{i}", "d" * 2000))
    capture = drain(settings, slot, initial_backup=False, flush_bytes=10_000)
    assert capture.progress.segments >= 5
    ranges = segment_ranges(archive)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False))
    assert sorted(c["row"]["name"] for _, c in changes_of(stored_transactions(archive),
                                                          "tags")) == sorted(
        f"t{i}" for i in range(30))


def test_lag_shows_pending_changes_and_the_check_alarms(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    drain(settings, slot, initial_backup=False)
    _tenant(conn)
    conn.execute("SELECT pg_sleep(1.2)")
    state = capture_status(conn, archive, slot, slot)
    assert state.lag_seconds >= 1.0 and not state.running
    assert not check_capture_lag(state, "1s").ok
    assert check_capture_lag(state, "1m").ok
    drain(settings, slot, initial_backup=False)
    assert capture_status(conn, archive, slot, slot).lag_seconds == 0.0


def test_a_capture_trying_its_store_again_still_shows_its_recovery_point(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    """After a failed store capture starts again from the slot and tries once more (against a
    store that hangs, for its whole timeout). Meanwhile its session holds the slot: it must
    still name the moment it last had every change stored, or status finds no lag at all
    ("capture is starting") and the lag check passes while nothing is stored."""
    capture = Capture(settings, archive, CaptureOptions(slot=slot, initial_backup=False))
    capture.open()
    try:
        capture.cycle()
        assert capture.progress.covered_until is not None
        capture.close()  # what run() does after the store failed, before it tries again
        capture.open()
        time.sleep(1.2)
        state = capture_status(conn, None, slot, slot)
        assert state.running and state.lag_seconds is not None and state.lag_seconds >= 1.0
        assert not check_capture_lag(state, "1s").ok
    finally:
        capture.close()


def test_second_capture_on_one_slot_is_refused(settings: Settings, slot: str,
                                               archive: Archive) -> None:
    first = Capture(settings, archive, CaptureOptions(slot=slot, initial_backup=False))
    first.open()
    try:
        second = Capture(settings, archive, CaptureOptions(slot=slot))
        with pytest.raises(CaptureRefused, match=f"another capture is running on slot {slot}"):
            second.open()
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            assert capture_status(conn, archive, slot, slot).running
    finally:
        first.close()


def test_a_capture_stopped_frees_its_slot_at_once(settings: Settings, slot: str,
                                                  archive: Archive) -> None:
    """The lock goes with the stop, not with the server's later end of the session: a
    capture started right after another stopped (a restart, `--once` in a loop) is not
    refused."""
    first = Capture(settings, archive, CaptureOptions(slot=slot, initial_backup=False))
    first.open()
    assert first.stream is not None
    first.close()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert lock_holder(conn, slot) is None
        assert conn.execute("SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone()[0]  # the stream ended with the close
    for _ in range(50):
        drain(settings, slot, initial_backup=False)


def test_a_table_without_key_is_refused_in_one_line(settings: Settings,
                                                    conn: psycopg.Connection,
                                                    slot: str) -> None:
    conn.execute("CREATE TABLE keyless_notes (body text)")
    with pytest.raises(CaptureRefused) as refused:
        drain(settings, slot)
    assert "keyless_notes has no primary key or replica identity" in refused.value.message
    assert "REPLICA IDENTITY FULL" in refused.value.hint
    conn.execute("ALTER TABLE keyless_notes REPLICA IDENTITY FULL")
    drain(settings, slot, initial_backup=False)  # then it is captured


def test_a_role_without_replication_is_refused(owner_db_url: str, backup_dir: Path) -> None:
    settings = Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")
    name = slot_name()
    try:
        with pytest.raises(CaptureRefused) as refused:
            drain(settings, name)
        assert "may not read changes" in refused.value.message
        assert "REPLICATION" in refused.value.hint and "rds_replication" in refused.value.hint
    finally:
        drop_slot(owner_db_url, name)


def test_slot_creation_takes_a_base_backup(settings: Settings, slot: str,
                                           archive: Archive) -> None:
    capture = drain(settings, slot)
    assert capture.progress.backups == 1
    assert len(archive.backups()) == 1


def test_a_capture_killed_before_its_initial_backup_takes_it_when_it_starts_again(
        settings: Settings, slot: str, archive: Archive) -> None:
    """The slot is created, then capture dies before the base backup it takes for it: the
    next start owes that base (without it no change from the slot's start restores)."""
    capture = Capture(settings, archive, CaptureOptions(slot=slot, once=True))
    capture.open()
    assert capture.backup_due
    capture.close()  # killed before its first cycle: the slot stays, no backup was taken
    assert archive.backups() == []
    capture = drain(settings, slot)
    assert capture.progress.backups == 1 and len(archive.backups()) == 1


def test_a_migration_ends_the_segment_and_a_full_backup_follows(
        old_db_url: str, backup_dir: Path, slot_on_old: str) -> None:
    from support.migrations import FIRST, HEAD, migrate_to

    settings = Settings(database_url=old_db_url, backup_dir=backup_dir, app_env="test")
    archive = Archive.from_settings(settings)
    drain(settings, slot_on_old, initial_backup=False)
    with psycopg.connect(old_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (name) VALUES ('before')")
        drain(settings, slot_on_old, initial_backup=False)  # stored at FIRST: the restart
        conn.execute("INSERT INTO tenants (name) VALUES ('before 2')")  # below reads FIRST
        migrate_to(settings, HEAD)
        conn.execute("INSERT INTO tenants (name, slug) VALUES ('after', 'after')")
    capture = drain(settings, slot_on_old, initial_backup=False)
    assert capture.progress.backups == 1 and len(archive.backups()) == 1
    by_revision: dict[str | None, list[tuple[str, str]]] = {}
    for info in archive.segments():
        revision = segment_facts(archive, info).revision
        for tx in read_segment(archive, info):
            by_revision.setdefault(revision, []).extend(
                (c.op, c.row["name"]) for c in tx.changes if c.table == "tenants" and c.row)
    assert by_revision[FIRST] == [("insert", "before"), ("insert", "before 2")]
    # the migration's own transaction (its data changes: slugs) opens the HEAD segments
    assert by_revision[HEAD][-1] == ("insert", "after")
    assert {op for op, _ in by_revision[HEAD][:-1]} <= {"update"}
    assert set(by_revision) == {FIRST, HEAD}


@pytest.fixture
def slot_on_old(old_db_url: str) -> Iterator[str]:
    name = slot_name()
    yield name
    drop_slot(old_db_url, name)


def test_cli_capture_once_status_check_and_stop(run_cli, conn: psycopg.Connection,
                                                slot: str, archive: Archive) -> None:
    env = {"CAPTURE_SLOT": slot}
    first = run_cli("capture", "--once", "--flush-every", "1s", env=env)
    assert first.returncode == 0, first.stderr
    assert f"capturing changes through slot {slot}" in first.stdout
    assert len(archive.backups()) == 1  # the base backup of a new slot
    _tenant(conn)
    conn.execute("SELECT pg_sleep(1.1)")
    behind = run_cli("backups", "check", "--max-capture-lag", "1s", env=env)
    assert behind.returncode == 1 and "capture lag is" in behind.stderr
    assert behind.stderr.count("\n") <= 2  # one line (and a hint at most), no traceback
    status = run_cli("capture", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    found = orjson.loads(status.stdout)
    assert found["exists"] and not found["running"] and found["lag_seconds"] >= 1.0
    assert found["retained_wal_bytes"] > 0 and found["segments"] == 0
    again = run_cli("capture", "--once", env=env)
    assert again.returncode == 0, again.stderr
    ok = run_cli("backups", "check", "--max-capture-lag", "1m", env=env)
    assert ok.returncode == 0 and "capture lag 0.0s" in ok.stdout, ok.stderr
    assert orjson.loads(run_cli("capture", "status", "--json", env=env).stdout)["segments"] == 1
    refused = run_cli("capture", "stop", env=env)
    assert refused.returncode == 2 and "--drop-slot" in refused.stderr
    stopped = run_cli("capture", "stop", "--drop-slot", env=env)
    assert stopped.returncode == 0 and f"slot {slot}" in stopped.stdout, stopped.stderr
    assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,)).fetchone()[0] == 0
    gone = run_cli("backups", "check", "--max-capture-lag", "1m", env=env)
    assert gone.returncode == 1 and "changes are not being captured" in gone.stderr


def test_metrics_are_served_over_http_while_capture_runs(settings: Settings,
                                                         conn: psycopg.Connection,
                                                         slot: str) -> None:
    with running(settings, slot) as capture:
        metrics = CaptureMetrics(capture.progress)
        port = metrics.serve("127.0.0.1", 0)
        try:
            _tenant(conn)
            wait_for(lambda: capture.progress.segments >= 1, "a segment")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        finally:
            metrics.stop()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("tasklets_capture_")}
    assert 0 <= values["tasklets_capture_lag_seconds"] < 5
    assert values["tasklets_capture_retained_wal_bytes"] > 0
    assert values["tasklets_capture_last_flush_timestamp_seconds"] > time.time() - 60
    assert values["tasklets_capture_segments"] >= 1


def _bulk_then_one(conn: psycopg.Connection) -> None:
    """One transaction of 50 tags of 1 kB (above a 20 kB max_transaction_bytes), then one."""
    tenant = _tenant(conn)
    with conn.transaction():
        for i in range(50):
            conn.execute("INSERT INTO tags (tenant_id, name, description) VALUES (%s, %s, %s)",
                         (tenant, f"bulk{i}", "x" * 1000))
    conn.execute("INSERT INTO tags (tenant_id, name) VALUES (%s, 'after')", (tenant,))


def test_a_transaction_too_big_to_hold_is_skipped_and_a_full_backup_covers_it(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    drain(settings, slot, initial_backup=False)
    _bulk_then_one(conn)
    capture = drain(settings, slot, initial_backup=False, max_transaction_bytes=20_000)
    assert capture.progress.backups == 1
    names = [c["row"]["name"] for _, c in changes_of(stored_transactions(archive), "tags")]
    assert names == ["after"]
    ranges = segment_ranges(archive)
    gaps = [(prev[1], nxt[0]) for prev, nxt in zip(ranges, ranges[1:], strict=False)
            if prev[1] != nxt[0]]
    assert len(gaps) == 1  # the skipped transaction: a gap no segment covers
    assert archive.facts(archive.backups()[0]).rows >= 52  # the backup holds the bulk rows


class Killed(BaseException):
    """Capture's end where a kill -9 would end it (not an error it could handle)."""


class KilledAfterAdvancing(Reporter):
    """Ends capture at the first segment stored after the warning that a backup is owed:
    the slot then stands past the skipped transaction, and the backup is not taken."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.owed = False

    def warn(self, text: str) -> None:
        self.owed = self.owed or "a full backup follows" in text

    def line(self, text: str = "") -> None:
        if self.owed and text.startswith("💾"):
            raise Killed


def test_a_capture_killed_before_the_backup_it_owes_takes_it_when_it_starts_again(
        settings: Settings, conn: psycopg.Connection, slot: str, archive: Archive) -> None:
    drain(settings, slot, initial_backup=False)
    backup(settings)  # a base before the bulk transaction
    _bulk_then_one(conn)
    with pytest.raises(Killed):
        drain(settings, slot, initial_backup=False, max_transaction_bytes=20_000,
              report=KilledAfterAdvancing())
    assert len(archive.backups()) == 1  # the slot is past the bulk rows; no backup has them

    capture = drain(settings, slot, initial_backup=False, max_transaction_bytes=20_000)
    assert capture.progress.backups == 1 and len(archive.backups()) == 2
    assert archive.facts(archive.backups()[0]).rows >= 52  # the new one holds the bulk rows


def test_a_non_superuser_role_with_replication_captures(owner_db_url: str, pg_server_url: str,
                                                        backup_dir: Path) -> None:
    """As on RDS, Cloud SQL or Azure: no superuser, REPLICATION, and the tables' owner's
    rights (here through membership of the owning role)."""
    role = "tasklets_capture_role"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            admin.execute(f"CREATE ROLE {role} LOGIN REPLICATION NOSUPERUSER")
        admin.execute(f"GRANT tasklets_owner TO {role}")
    url = owner_db_url.replace("tasklets_owner@", f"{role}@")
    settings = Settings(database_url=url, backup_dir=backup_dir, app_env="test")
    name = slot_name()
    try:
        drain(settings, name, initial_backup=False)
        with psycopg.connect(url, autocommit=True) as conn:
            _tenant(conn)
        capture = drain(settings, name, initial_backup=False)
        assert capture.progress.transactions == 1
        with psycopg.connect(url, autocommit=True) as conn:
            assert capture_status(conn, None, name, name).lag_seconds == 0.0
    finally:
        drop_slot(url, name)

