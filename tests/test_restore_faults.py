"""Faults during a restore: kill -9 at each stage and a terminated connection leave the
database exactly as before (ordered per-table hashes) and `latest` still the good backup."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from support.faults import run_killed_at, wait_for_tool_backends_to_end
from support.restore import insert_sample, schema_lines, table_hashes

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.output import Reporter
from ops.restore.apply import restore

pytestmark = pytest.mark.faults

EXTRA_COMMENTS = 12_000  # more than one progress step, so a kill can land mid-COPY


@pytest.fixture
def prepared(settings: Settings, conn: psycopg.Connection) -> tuple[Path, tuple]:
    """A good backup in BACKUP_DIR, then changed data: (the backup, the hashes to keep)."""
    insert_sample(conn)
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) "
                 "SELECT 100 + g, 1, 10, 'comment ' || g FROM generate_series(1, %s) g",
                 (EXTRA_COMMENTS,))
    good = backup(settings).path
    conn.execute("UPDATE tasks SET title = title || ' (changed)'")
    conn.execute("DELETE FROM comments WHERE id % 3 = 0")
    return good, (table_hashes(conn), schema_lines(conn))


@pytest.mark.parametrize("trigger", [
    "line:💾 Safety backup",  # safety backup written, nothing cleared yet
    "line:✅ tenants",  # cleared, first table loaded
    "progress:📥 comments:1",  # in the middle of a COPY
    "line:⚙️  Re-enabling",  # everything loaded, indexes and keys not yet rebuilt
    "line:🏗️  Rebuilt",  # indexes and keys rebuilt, foreign keys validated
    "line:🔗 Foreign keys verified",  # sequences reset, about to commit
])
def test_kill_9_mid_restore_leaves_the_database_unchanged(
        settings: Settings, conn: psycopg.Connection, prepared, trigger: str):
    good, before = prepared
    run_killed_at(settings.database_url, str(settings.backup_dir), trigger,
                  "from ops.restore.apply import restore; restore(settings, report=R)")
    wait_for_tool_backends_to_end(settings.database_url)
    assert (table_hashes(conn), schema_lines(conn)) == before  # indexes set aside come back
    assert Archive.at(settings.backup_dir).resolve("latest").path == good
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
    assert (table_hashes(conn), schema_lines(conn)) == before
    assert [b for b in Archive.at(settings.backup_dir).backups() if b.safety] == []


@pytest.mark.security
def test_ctrl_c_mid_restore_says_so_and_changes_nothing(settings: Settings, cli_env: dict,
                                                        conn: psycopg.Connection, prepared):
    import signal
    import subprocess
    import sys
    import time

    from ops.core.config import PROJECT_ROOT

    _, before = prepared
    # The load of comments then takes 3 s (an ALWAYS trigger fires in replica mode too), so
    # the interrupt lands inside the transaction however fast the rest of the restore is.
    conn.execute("CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$")
    conn.execute("CREATE TRIGGER slow BEFORE INSERT ON comments FOR EACH STATEMENT "
                 "EXECUTE FUNCTION slow_down()")
    conn.execute("ALTER TABLE comments ENABLE ALWAYS TRIGGER slow")
    # A test run started in the background (`make test &`) ignores SIGINT, and so would the
    # child, which then never sees a KeyboardInterrupt: give it the default back.
    proc = subprocess.Popen([sys.executable, "-m", "ops", "restore", "latest"], env=cli_env,
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    for line in proc.stdout:  # interrupt once the transaction is under way
        if line.startswith("✅ tenants"):
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            break
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("❌ Interrupted")
    wait_for_tool_backends_to_end(settings.database_url)
    assert (table_hashes(conn), schema_lines(conn)) == before
