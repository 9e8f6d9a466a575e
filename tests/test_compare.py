"""`compare`: the database against a backup's row counts and checksums - what proves a restore
or a move to another server exact."""

from __future__ import annotations

import psycopg
import pytest
from support.restore import insert_sample, write_seed_file

from ops.backup.compare import compare_database
from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import BadBackup, OpsError


@pytest.fixture
def written(settings: Settings, conn: psycopg.Connection):
    insert_sample(conn)
    return backup(settings)


def test_an_unchanged_database_matches_its_backup(run_cli, written):
    shown = run_cli("compare", written.path.name)
    assert shown.returncode == 0, shown.stderr
    assert "✅ tasks: 2 rows, identical" in shown.stdout
    assert shown.stdout.splitlines()[-1] == (
        f"✅ The database holds exactly the backup's data: {len(written.tables)} tables, "
        f"{written.total_rows} rows, every sha256 equal")


def test_a_changed_value_is_named_by_its_table(settings, conn, written):
    conn.execute("UPDATE tasks SET title = title || '!' WHERE id = 10")
    with pytest.raises(OpsError, match=r"does not hold exactly the data of backup-.*: tasks: "
                                       r"2 rows on both sides, but their data differs"):
        compare_database(settings, written.path)


def test_rows_added_and_tables_missing_are_counted(run_cli, settings, conn, written):
    conn.execute("INSERT INTO tags (id, tenant_id, name) VALUES (9, 1, 'new')")
    conn.execute("DELETE FROM comments")
    refused = run_cli("compare")
    assert refused.returncode == 1
    assert "❌ tags: 3 rows in the database, 2 in the backup" in refused.stdout
    assert "❌ comments: 0 rows in the database, 1 in the backup" in refused.stdout
    assert refused.stderr.startswith("❌ the database does not hold exactly the data of backup-")
    assert "(and 1 more difference(s))" in refused.stderr


def test_a_file_without_checksums_cannot_be_compared(settings, tmp_path):
    path = write_seed_file(tmp_path / "seed.json", {"tenants": []})
    with pytest.raises(BadBackup, match="nothing to compare it with"):
        compare_database(settings, path)
