"""Change capture under faults (#27): kill -9 at random points, the database restarted, the
store unreachable for a while (S3 behind a gate), a server without wal_level=logical. Every
committed change ends up stored; a change stored twice is read once."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.capture import (
    Gate,
    changes_of,
    drain,
    drop_slot,
    running,
    segment_ranges,
    stored_transactions,
    wait_for,
)
from support.storage import start_server, use_server_env

from ops.backup.archive import Archive
from ops.capture.service import Capture, CaptureOptions
from ops.capture.slot import CaptureRefused
from ops.capture.status import capture_status, check_capture_lag
from ops.core.config import PROJECT_ROOT, Settings
from ops.dev.cluster import start_throwaway
from ops.schema.migrate import upgrade_in_transaction

pytest_plugins = ["support.capture_fixtures"]  # the `slot` fixture


class Writer:
    """Inserts tags named w0, w1, ... one transaction each, until stopped; `committed` holds
    the names whose commit returned."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.committed: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        number = 0
        conn = psycopg.connect(self.url, autocommit=True)
        tenant = conn.execute("INSERT INTO tenants (name, slug) VALUES ('w', 'w') "
                              "RETURNING id").fetchone()[0]
        while not self.stop.is_set():
            name = f"w{number}"
            try:
                conn.execute("INSERT INTO tags (tenant_id, name) VALUES (%s, %s)",
                             (tenant, name))
            except psycopg.OperationalError:  # the server restarting: reconnect
                time.sleep(0.2)
                with contextlib.suppress(psycopg.Error):
                    conn = psycopg.connect(self.url, autocommit=True)
                continue
            self.committed.append(name)
            number += 1
            time.sleep(0.005)
        conn.close()


def _stored_tags(archive: Archive) -> list[str]:
    return [c["row"]["name"] for op, c in changes_of(stored_transactions(archive), "tags")
            if op == "insert"]


def test_kill_9_at_random_points_loses_nothing_and_duplicates_are_read_once(
        settings: Settings, slot: str, cli_env: dict[str, str]) -> None:
    archive = Archive.from_settings(settings)
    drain(settings, slot, initial_backup=False)
    rng = random.Random(os.environ.get("CAPTURE_KILL_SEED", "27"))
    with Writer(settings.database_url) as writer:
        for _ in range(6):
            process = subprocess.Popen(
                [sys.executable, "-m", "ops", "capture", "--slot", slot, "--flush-every",
                 "0.1s", "--flush-mb", "1"], env=cli_env, cwd=PROJECT_ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.6, 2.0))  # start-up is ~0.5 s: kills land mid-cycle too
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    drain(settings, slot)
    stored = _stored_tags(archive)
    assert len(writer.committed) > 100
    assert stored == writer.committed  # every commit, in commit order, each once
    all_copies = len(stored_transactions(archive, dedupe=False))
    assert all_copies >= len(stored_transactions(archive))
    ranges = segment_ranges(archive)
    ends = {end for _, end in ranges}
    assert all(start in ends for start, _ in ranges[1:])  # each starts where one ended


def test_database_restart_mid_capture(settings: Settings, slot: str, pg_cluster) -> None:
    archive = Archive.from_settings(settings)
    with running(settings, slot) as capture, Writer(settings.database_url) as writer:
        wait_for(lambda: capture.progress.segments >= 2, "segments before the restart")
        pg_cluster.stop("fast")
        pg_cluster.start()
        done = capture.progress.segments
        wait_for(lambda: capture.progress.segments >= done + 3, "segments after it")
    drain(settings, slot)
    assert _stored_tags(archive) == writer.committed


def test_store_unreachable_for_a_while_capture_waits_then_catches_up_on_s3(
        db_url: str, slot: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server("s3")
    gate = Gate(server.port)
    try:
        use_server_env(monkeypatch, server)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{gate.port}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        settings = Settings(database_url=db_url, backup_dir=server.location("capture"),
                            app_env="test")
        archive = Archive.from_settings(settings)
        with running(settings, slot) as capture, Writer(db_url) as writer:
            wait_for(lambda: capture.progress.segments >= 1, "a segment in S3")
            gate.close()
            time.sleep(2.5)
            lag = capture.progress.lag_seconds()
            assert lag is not None and lag >= 2.0  # the metric grows
            with psycopg.connect(db_url, autocommit=True) as conn:
                check = check_capture_lag(capture_status(conn, None, slot, slot), "2s")
            assert not check.ok and "capture lag is" in check.line  # the alarm fires
            stalled = capture.progress.segments
            gate.open()
            wait_for(lambda: capture.progress.segments > stalled
                     and (capture.progress.lag_seconds() or 99) < 1.0, "catching up")
        drain(settings, slot)
        assert _stored_tags(archive) == writer.committed
    finally:
        gate.close()
        server.stop()


@pytest.mark.parametrize("read", ["stream", "sql"])
def test_an_invalidated_slot_is_refused_in_one_line(backup_dir: Path, read: str) -> None:
    """A slot that fell behind max_slot_wal_keep_size lost the WAL it needs: capture says so
    in one line with the fix (drop the slot, start again with a full backup), whichever way
    it reads, and the CLI exits non-zero without a traceback."""
    base = Path(tempfile.mkdtemp(prefix="tasklets-lostslot-"))
    os.chmod(base, 0o755)
    cluster = start_throwaway(base)  # of its own: the shared server's slots stay whole
    try:
        cluster.stop("fast")
        cluster.start(options="-c max_slot_wal_keep_size=1MB -c max_wal_size=32MB "
                      "-c min_wal_size=32MB")
        settings = Settings(database_url=cluster.url, backup_dir=backup_dir, app_env="test")
        with psycopg.connect(cluster.url) as conn:
            upgrade_in_transaction(conn, settings, "head")
            conn.commit()
        slot = f"lost_{read}"
        drain(settings, slot, initial_backup=False, read=read)
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            for _ in range(30):  # WAL past the slot's allowance, then a checkpoint drops it
                conn.execute("CREATE SCHEMA IF NOT EXISTS scratch")  # not an app table
                conn.execute("CREATE TABLE IF NOT EXISTS scratch.filler (n int)")
                conn.execute("INSERT INTO scratch.filler SELECT generate_series(1, 100000)")
                conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
                if conn.execute("SELECT wal_status FROM pg_replication_slots WHERE "
                                "slot_name = %s", (slot,)).fetchone()[0] == "lost":
                    break
            else:
                pytest.fail("the slot was never invalidated")
        with pytest.raises(CaptureRefused) as refused:
            drain(settings, slot, initial_backup=False, read=read)
        assert refused.value.message.startswith(f"replication slot {slot} cannot be read: ")
        assert "\n" not in refused.value.message
        assert "capture stop --drop-slot" in refused.value.hint
        env = {**os.environ, "DATABASE_URL": cluster.url, "BACKUP_DIR": str(backup_dir),
               "APP_ENV": "test"}
        done = subprocess.run([sys.executable, "-m", "ops", "capture", "--once", "--slot",
                               slot, "--read", read], env=env, capture_output=True,
                              text=True, timeout=120, cwd=PROJECT_ROOT)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert f"replication slot {slot} cannot be read" in done.stderr + done.stdout
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("dropped", ["before a read", "just after a read"])
def test_a_slot_dropped_under_a_running_sql_capture_stops_it_in_one_line(
        settings: Settings, slot: str, dropped: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read over SQL, the slot is held only during a read: `capture stop --drop-slot` between
    two reads succeeds. The running capture then stops (no retry loop) with the slot-gone
    line, whether the drop lands before its read or between the read and its look at the
    slot's retained WAL."""
    capture = Capture(settings, Archive.from_settings(settings),
                      CaptureOptions(slot=slot, initial_backup=False, read="sql"))
    capture.open()
    if dropped == "before a read":
        drop_slot(settings.database_url, slot)
    else:  # a window of a few milliseconds: placed, not raced for
        read = capture._peek

        def read_then_drop(upto_text: str, batch: Any) -> bool:
            complete = read(upto_text, batch)
            drop_slot(settings.database_url, slot)
            return complete

        monkeypatch.setattr(capture, "_peek", read_then_drop)
    with pytest.raises(CaptureRefused) as refused:
        capture.run()
    assert refused.value.message == f"replication slot {slot} is gone (dropped while capture ran)"
    assert "Start capture again" in refused.value.hint


def test_a_server_without_logical_wal_is_refused_in_one_line(backup_dir: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="tasklets-replica-"))
    os.chmod(base, 0o755)
    cluster = start_throwaway(base)
    try:
        cluster.stop("fast")
        cluster.start(options="-c wal_level=replica")
        settings = Settings(database_url=cluster.url, backup_dir=backup_dir, app_env="test")
        with pytest.raises(CaptureRefused) as refused:
            Capture(settings, Archive.from_settings(settings), CaptureOptions()).open()
        assert refused.value.message == ("the database runs with wal_level=replica; change "
                                         "capture needs wal_level=logical")
        for flag in ("rds.logical_replication=1", "cloudsql.logical_decoding=on",
                     "wal_level=logical", "make capture-up"):
            assert flag in refused.value.hint
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
