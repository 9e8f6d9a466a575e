"""The backup lock: one backup of a database at a time; the second waits (and says so) or
steps aside naming the holder."""

from __future__ import annotations

import threading

import pytest
from support.faults import Lines

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.lock import BackupRunning, backup_lock
from ops.core.config import Settings


def test_a_backup_waits_for_the_one_holding_the_lock_and_says_so(settings: Settings):
    out = Lines()
    done: list[object] = []
    with backup_lock(settings):
        worker = threading.Thread(target=lambda: done.append(backup(settings, report=out)))
        worker.start()
        waited = threading.Event()
        for _ in range(200):  # bounded: until it reports waiting
            if any(line.startswith("⏳ Another backup") for line in out.lines):
                waited.set()
                break
            worker.join(0.05)
        assert waited.is_set(), out.lines
        assert not done and Archive.at(settings.backup_dir).backups() == []
    worker.join(60)

    assert len(done) == 1 and len(Archive.at(settings.backup_dir).backups()) == 1
    assert "tasklets-db" in next(line for line in out.lines if line.startswith("⏳"))


def test_without_waiting_a_second_run_steps_aside_naming_the_holder(settings: Settings):
    with backup_lock(settings), pytest.raises(BackupRunning, match=r"server pid \d+"), \
            backup_lock(settings, wait=False):
        pass

    with backup_lock(settings, wait=False):  # released when the holder's connection ended
        pass


def test_the_lock_is_per_database(settings: Settings, pg_server_url: str, template_db: str):
    from support.databases import create_database, drop_database, with_dbname

    other = create_database(pg_server_url, template_db)
    try:
        elsewhere = settings.with_url(with_dbname(pg_server_url, other))
        with backup_lock(settings), backup_lock(elsewhere, wait=False):
            pass
    finally:
        drop_database(pg_server_url, other)
