"""What `docker stop` and Kubernetes do (SIGTERM) and a server that goes away mid-COPY, to real
`tasklets-db` processes: one line, the right exit code, nothing changed or left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from support.faults import wait_for_tool_backends_to_end
from support.restore import insert_sample, schema_lines, table_hashes

from ops.backup.create import backup
from ops.core.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.faults

TERMINATED = 143
WAIT = 60  # seconds any one wait may take at most
EXTRA_COMMENTS = 60_000  # a COPY of a second or more, to interrupt in its middle


@pytest.fixture
def slow_restore(settings: Settings, conn: psycopg.Connection) -> tuple:
    """A backup in BACKUP_DIR whose COPY into comments takes a while (the client parses and
    sends rows as fast as it can), then changed data: the database's state to keep."""
    insert_sample(conn)
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) "
                 "SELECT 100 + g, 1, 10, 'comment ' || g FROM generate_series(1, %s) g",
                 (EXTRA_COMMENTS,))
    backup(settings)
    conn.execute("UPDATE tasks SET title = title || ' (changed)'")
    return table_hashes(conn), schema_lines(conn)


def start(cli_env: dict, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ops", *args], env=cli_env,
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_backend(conn: psycopg.Connection, condition: str) -> int:
    """The pid of the tool's backend once it matches `condition` (bounded wait)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                           "current_database() AND application_name = 'tasklets-db' AND "
                           + condition).fetchone()
        if row:
            return row[0]
        time.sleep(0.02)
    raise AssertionError(f"no tasklets-db backend with {condition} within {WAIT}s")


def left_in(backup_dir: Path) -> list[str]:
    return sorted(p.name for p in backup_dir.iterdir())


def test_sigterm_mid_restore_rolls_back_removes_the_safety_backup_and_exits_143(
        settings: Settings, conn: psycopg.Connection, cli_env: dict, slow_restore,
        backup_dir: Path):
    files = left_in(backup_dir)
    proc = start(cli_env, "restore", "latest")
    # the safety backup written, the load under way
    wait_for_backend(conn, "query LIKE 'COPY %comments%FROM STDIN%'")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == TERMINATED, stderr
    assert stderr.strip().splitlines()[-1] == \
        "❌ Terminated (SIGTERM); any open transaction was rolled back, nothing was changed."
    wait_for_tool_backends_to_end(settings.database_url)
    assert (table_hashes(conn), schema_lines(conn)) == slow_restore
    assert left_in(backup_dir) == files  # no pre-restore safety backup, no partial


def test_sigterm_mid_backup_leaves_no_file_and_exits_143(
        settings: Settings, conn: psycopg.Connection, cli_env: dict, backup_dir: Path):
    insert_sample(conn)
    with psycopg.connect(settings.database_url) as holder:  # the backup waits for its lock
        holder.execute("LOCK TABLE comments IN ACCESS EXCLUSIVE MODE")
        proc = start(cli_env, "backup")
        wait_for_backend(conn, "wait_event_type = 'Lock'")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == TERMINATED, stderr
    assert stderr.strip().splitlines()[-1].startswith("❌ Terminated (SIGTERM)")
    assert left_in(backup_dir) == []


def test_server_gone_mid_copy_is_one_line_without_psycopgs_own(
        settings: Settings, conn: psycopg.Connection, cli_env: dict, slow_restore):
    proc = start(cli_env, "restore", "latest")
    pid = wait_for_backend(conn, "query LIKE 'COPY %comments%FROM STDIN%'")
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == 1
    # (a warning that the backup picked is unverified may come first: it is ours)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("⚠️")]
    assert lines[0].startswith("❌ ") and "lost the database connection" in lines[0], stderr
    assert "psycopg" not in stderr and "error ignored" not in stderr
    assert all(line.startswith(("❌ ", "💡 ")) for line in lines), stderr
    wait_for_tool_backends_to_end(settings.database_url)
    assert (table_hashes(conn), schema_lines(conn)) == slow_restore
