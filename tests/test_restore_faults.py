"""Faults during a restore: kill -9 at each stage and a terminated connection leave the
database exactly as before (ordered per-table hashes) and `latest` still the good backup."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from restore_support import insert_sample, table_hashes

from ops.backup import backup
from ops.backup_files import list_backups
from ops.backup_reader import resolve_backup
from ops.config import PROJECT_ROOT, Settings
from ops.errors import OpsError
from ops.output import Reporter
from ops.restore import restore

pytestmark = pytest.mark.faults

EXTRA_COMMENTS = 12_000  # more than one progress step, so a kill can land mid-COPY

# Runs a restore whose reporter SIGKILLs its own process when the trigger is reached.
KILLER = r"""
import os, signal, sys
from contextlib import contextmanager
from pathlib import Path
from ops.config import Settings
from ops.output import Reporter
from ops.restore import restore

url, backup_dir, trigger = sys.argv[1:4]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

class KillAt(Reporter):
    def line(self, text=""):
        print(text, flush=True)
        if trigger.startswith("line:") and text.startswith(trigger[5:]):
            die()

    @contextmanager
    def progress(self, description, total):
        def advance(n=1):
            if trigger == "rows:" + description.split()[-1]:
                die()
        yield advance

restore(Settings(database_url=url, backup_dir=Path(backup_dir), app_env="test"),
        report=KillAt(quiet=False))
print("FINISHED")
"""


@pytest.fixture
def prepared(settings: Settings, conn: psycopg.Connection) -> tuple[Path, dict]:
    """A good backup in BACKUP_DIR, then changed data: (the backup, the hashes to keep)."""
    insert_sample(conn)
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) "
                 "SELECT 100 + g, 1, 10, 'comment ' || g FROM generate_series(1, %s) g",
                 (EXTRA_COMMENTS,))
    good = backup(settings).path
    conn.execute("UPDATE tasks SET title = title || ' (changed)'")
    conn.execute("DELETE FROM comments WHERE id % 3 = 0")
    return good, table_hashes(conn)


def wait_for_restore_backend_to_end(conn: psycopg.Connection) -> None:
    for _ in range(300):
        busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND application_name = 'tasklets-db'"
                            ).fetchone()[0]
        if not busy:
            return
        time.sleep(0.1)
    raise AssertionError("the killed restore's server backend did not go away")


@pytest.mark.parametrize("trigger", [
    "line:💾 Safety backup",  # safety backup written, nothing cleared yet
    "line:✅ tenants",  # cleared, first table loaded
    "rows:comments",  # in the middle of a COPY
    "line:⚙️  Re-enabling",  # everything loaded, foreign keys not yet validated
    "line:🔗 Foreign keys verified",  # validated, sequences reset, about to commit
])
def test_kill_9_mid_restore_leaves_the_database_unchanged(
        settings: Settings, conn: psycopg.Connection, prepared, trigger: str):
    good, before = prepared
    run = subprocess.run(
        [sys.executable, "-c", KILLER, settings.database_url, str(settings.backup_dir), trigger],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert "FINISHED" not in run.stdout
    wait_for_restore_backend_to_end(conn)
    assert table_hashes(conn) == before
    assert resolve_backup(settings.backup_dir, "latest") == good
    # the database is usable and a new restore succeeds afterwards
    restore(settings, safety_backup=False)
    assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] == EXTRA_COMMENTS + 1


class TerminateAt(Reporter):
    """Terminates the restore's own server connection when a line is reported."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(quiet=True)
        self.url, self.prefix = url, prefix

    def _terminate(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name = 'tasklets-db'").fetchall()
        assert killed

    def line(self, text: str = "") -> None:
        if text.startswith(self.prefix):
            self._terminate()

    @contextmanager
    def progress(self, description: str, total: int | None):
        yield lambda n=1: None


@pytest.mark.parametrize("prefix", ["✅ tenants", "⚙️  Re-enabling"])
def test_lost_connection_mid_restore_rolls_back_with_one_clear_line(
        settings: Settings, conn: psycopg.Connection, prepared, prefix: str):
    _, before = prepared
    with pytest.raises(OpsError, match="lost the database connection during the restore"):
        restore(settings, report=TerminateAt(settings.database_url, prefix))
    assert table_hashes(conn) == before
    assert [b for b in list_backups(settings.backup_dir) if b.safety] == []
