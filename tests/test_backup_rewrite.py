"""A backup racing a table rewrite (ALTER ... TYPE, TRUNCATE: not MVCC-safe) never writes a
file that misses the rewritten table's rows: its snapshot comes after its table locks, and a
rewrite that slips in anyway fails the backup."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import psycopg
import pytest

from ops.backup import create as backup_module
from ops.backup.create import backup, write_backup
from ops.backup.verify import verify_backup
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

CLIENTS = 2000


@pytest.fixture
def clients(conn: psycopg.Connection) -> int:
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('T', 't')")
    conn.execute("INSERT INTO clients (tenant_id, name, metadata) SELECT "
                 "(SELECT id FROM tenants), 'client ' || g, jsonb_build_object('n', g) "
                 "FROM generate_series(1, %s) g", (CLIENTS,))
    return CLIENTS


def _rewrite(db_url: str) -> psycopg.Connection:
    """A transaction that has rewritten `clients` (ACCESS EXCLUSIVE held until commit)."""
    ddl = psycopg.connect(db_url)
    ddl.execute("ALTER TABLE clients ALTER COLUMN name TYPE text USING name || ''")
    return ddl


def _wait_for_lock_wait(conn: psycopg.Connection, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                               "'Lock' AND datname = current_database()").fetchone()[0]
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the backup never waited for the rewrite's lock")


@pytest.mark.parametrize("jobs", [1, 2])
def test_backup_started_during_a_rewrite_holds_every_row_of_the_rewritten_table(
        settings: Settings, conn, db_url, clients, monkeypatch, jobs):
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)  # jobs 2: really parallel
    ddl = _rewrite(db_url)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = backup(settings, jobs=jobs)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _wait_for_lock_wait(conn)
    finally:
        ddl.commit()
        ddl.close()
    worker.join(60)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.tables["clients"] == clients
    checked = verify_backup(result.path)
    assert checked.ok and checked.tables["clients"] == clients
    conn.execute("DELETE FROM clients")
    restore(settings, result.path, safety_backup=False)
    assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == clients


def test_a_rewrite_committed_under_a_callers_snapshot_fails_the_backup(
        settings: Settings, conn, db_url, clients, tmp_path):
    reader = psycopg.connect(db_url)
    reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    reader.execute("SELECT 1")  # the snapshot is taken here, before the rewrite
    ddl = _rewrite(db_url)
    ddl.commit()
    ddl.close()
    target = tmp_path / "raced.json"
    with pytest.raises(OpsError) as failed:
        write_backup(reader, target)
    reader.close()
    assert "clients" in failed.value.message and "rewritten" in failed.value.message
    assert not target.exists()


def test_a_rewrite_queued_behind_a_parallel_backup_fails_it_instead_of_deadlocking(
        settings: Settings, conn, db_url, clients, monkeypatch):
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)
    started = backup_module.stream_parts
    altered: dict = {}

    def alter() -> None:
        with psycopg.connect(db_url) as ddl:
            ddl.execute("SET lock_timeout = '30s'")
            ddl.execute("ALTER TABLE clients ALTER COLUMN name TYPE text USING name || ''")
            altered["done"] = True

    def streams_after_an_alter_queued(*args, **kwargs):
        waiter = threading.Thread(target=alter)
        waiter.start()
        altered["thread"] = waiter
        _wait_for_lock_wait(conn)  # the ALTER waits for the backup's own locks
        return started(*args, **kwargs)

    monkeypatch.setattr(backup_module, "stream_parts", streams_after_an_alter_queued)
    with pytest.raises(OpsError) as failed:
        backup(settings, jobs=2)
    assert "schema change" in failed.value.message and "no backup file" in failed.value.message
    altered["thread"].join(30)
    assert altered.get("done")
    assert list(settings.backup_dir.glob("backup-*")) == []


def test_a_table_dropped_while_the_backup_starts_is_one_line(settings: Settings, monkeypatch):
    found = backup_module.discover_tables
    calls = []

    def with_one_dropped_since(conn):  # the first call: the tables to lock
        calls.append(1)
        tables = found(conn)
        return [*tables, replace(tables[0], name="dropped_since")] if len(calls) == 1 \
            else tables

    monkeypatch.setattr(backup_module, "discover_tables", with_one_dropped_since)
    with pytest.raises(OpsError) as failed:
        backup(settings)
    assert "schema changed" in failed.value.message and "dropped_since" in failed.value.message
    assert list(settings.backup_dir.glob("backup-*")) == []


@pytest.mark.faults
def test_a_backup_started_during_an_old_revision_restore_holds_what_it_restored(
        settings: Settings, conn, monkeypatch):
    """The reproduction of the finding: an old-revision restore migrating (ALTER ... TYPE and
    friends) while a backup starts; the backup must hold every restored row."""
    from support.migrations import OLD_BACKUPS
    from support.restore import table_hashes

    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)  # --jobs 2 really parallel
    restoring = threading.Thread(target=restore, args=(
        settings, OLD_BACKUPS / "0001-sample-scale-0.05.json.gz"), kwargs={"safety_backup": False})
    restoring.start()
    deadline = time.monotonic() + 60
    while not conn.execute("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                           "AND relation = 'tasks'::regclass AND granted").fetchone()[0]:
        assert time.monotonic() < deadline and restoring.is_alive(), "the restore never locked"
        time.sleep(0.01)
    made = backup(settings, jobs=2)
    restoring.join(120)
    restored = table_hashes(conn)
    assert made.tables["tasks"] == conn.execute("SELECT count(*) FROM tasks").fetchone()[0] > 0
    conn.execute("TRUNCATE tasks CASCADE")
    restore(settings, made.path, safety_backup=False)
    assert table_hashes(conn) == restored
