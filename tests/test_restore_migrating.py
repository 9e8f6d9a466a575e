"""Restoring a backup made at an older schema revision: the schema is rebuilt at that revision
from the migrations, the rows loaded, the migrations run on them - in one transaction, so any
failure (a bad file, data a migration cannot take, kill -9) leaves schema and data as before."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from support.backup import load
from support.faults import ActAt, run_killed_at, wait_for_tool_backends_to_end
from support.migrations import FIRST, HEAD, OLD_BACKUPS
from support.restore import (
    insert_sample,
    marker,
    schema_lines,
    table_hashes,
    write_line_backup,
)

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import OpsError, Refused
from ops.restore.apply import DEFERRED, restore
from ops.schema.migrate import push, schema_differences

SAMPLE = OLD_BACKUPS / "0001-sample.json"
SCALED = OLD_BACKUPS / "0001-sample-scale-0.05.json.gz"
PATH_LINE = (f"📜 Backup at {FIRST}, database at {HEAD}: restoring at {FIRST}, then migrating "
             f"{FIRST} → {HEAD}")


def state(conn: psycopg.Connection) -> tuple:
    """Data, schema and marker: everything a failed restore must leave as it was."""
    return table_hashes(conn), schema_lines(conn), marker(conn)


@pytest.fixture
def before(conn: psycopg.Connection) -> tuple:
    insert_sample(conn)
    return state(conn)


def _safety_backups(settings: Settings) -> list[Path]:
    return [b.path for b in Archive.at(settings.backup_dir).backups() if b.safety]


def test_cli_names_the_migration_path_and_json_reports_it(run_cli, conn, before):
    shown = run_cli("restore", str(SAMPLE))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert PATH_LINE in lines
    assert f"🏗️  Schema rebuilt at {FIRST} from the migrations (16 tables)" in lines
    assert f"✅ Applied {HEAD}: estimate minutes and tenant slugs" in lines
    assert lines[-2] == "✅ Database restore completed!"

    as_json = run_cli("restore", str(SAMPLE), "--json", "--no-safety-backup")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert (result["migrated_from"], result["migrated_to"]) == (FIRST, HEAD)
    assert (result["backup_revision"], result["database_revision"]) == (FIRST, HEAD)


def test_dry_run_says_it_would_migrate_and_changes_nothing(run_cli, settings, conn, before):
    shown = run_cli("restore", str(SCALED), "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert (f"📜 Backup at {FIRST}, database at {HEAD}: would restore at {FIRST}, then migrate "
            f"{FIRST} → {HEAD}") in shown.stdout
    assert "✅ tasks: 506 rows (would be restored)" in shown.stdout
    assert state(conn) == before
    assert _safety_backups(settings) == []


def _old_backup_with(tmp_path: Path, table: str, index: int, **fields) -> Path:
    """The old sample backup, consistent again (fresh checksums), with one row changed."""
    tables = load(SAMPLE)["tables"]
    tables[table][index].update(fields)
    return write_line_backup(tmp_path / "changed.json", tables, revision=FIRST)


def _truncated(tmp_path: Path) -> Path:
    """Cut inside the comments: without its meta line, the file is read as one without a
    revision, into the current schema, and refused there."""
    data = SAMPLE.read_bytes()
    target = tmp_path / "truncated.json"
    target.write_bytes(data[:data.index(b'"comments": [') + 200])
    return target


def _flipped(tmp_path: Path) -> Path:
    """One byte changed in a task's title: found by the checksum once every table is loaded
    into the rebuilt schema."""
    data = SAMPLE.read_bytes()
    target = tmp_path / "flipped.json"
    at = data.index(b'"title":"Build the login form"') + 10
    target.write_bytes(data[:at] + b"b" + data[at + 1:])
    return target


@pytest.mark.parametrize(("damage", "pattern"), [
    (_truncated, "nothing was changed"),
    (_flipped, "table 'tasks' does not match its sha256 in meta"),
    (lambda tmp: _old_backup_with(tmp, "tasks", 1, estimateHours="lots"),
     r"table tasks row 2 \(line \d+\), column estimate_hours: invalid input syntax"),
    (lambda tmp: _old_backup_with(tmp, "tags", 0, tenantId=99),
     r"table tags row id=1: tenant_id=99 points to a missing tenants row"),
], ids=["truncated", "flipped-byte", "wrong-type-at-the-old-revision",
        "dangling-reference"])
def test_a_damaged_old_backup_leaves_schema_and_data_unchanged(
        settings, conn, before, tmp_path: Path, damage, pattern: str):
    with pytest.raises(OpsError, match=pattern) as caught:
        restore(settings, damage(tmp_path))
    assert caught.value.exit_code == 1
    assert state(conn) == before
    assert _safety_backups(settings) == []


def test_data_a_migration_cannot_take_leaves_schema_and_data_unchanged(
        settings, conn, before, old_db_url: str, tmp_path: Path):
    old = Settings(database_url=old_db_url, backup_dir=tmp_path, app_env="test")
    with psycopg.connect(old_db_url, autocommit=True) as old_conn:
        old_conn.execute("INSERT INTO tenants (id, name) VALUES (1, 'T')")
        old_conn.execute("INSERT INTO products (id, tenant_id, name) VALUES (1, 1, 'P')")
        old_conn.execute("INSERT INTO tasks (id, tenant_id, product_id, title, estimate_hours) "
                         "VALUES (1, 1, 1, 'fits', 35791394.12), (7, 1, 1, 'too big', 4e7)")
    path = backup(old).path

    with pytest.raises(OpsError) as caught:
        restore(settings, path)
    assert caught.value.message.startswith(
        f"the backup's data cannot be migrated {FIRST} → {HEAD}: task 7 has estimate_hours "
        "40000000.00")
    assert "--allow-schema-mismatch" in caught.value.hint
    assert state(conn) == before
    assert _safety_backups(settings) == []


def test_owner_without_superuser_restores_an_old_backup(owner_db_url: str, backup_dir: Path):
    settings = Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")
    with psycopg.connect(owner_db_url, autocommit=True) as conn:
        owners_before = [line for line in schema_lines(conn) if line.startswith("owner ")]

        result = restore(settings, SCALED)

        assert result.fk_mode == DEFERRED and result.migrated_to == HEAD
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 506
        assert [line for line in schema_lines(conn) if line.startswith("owner ")] == \
            owners_before
    assert schema_differences(settings) == []


def test_superuser_restore_keeps_the_tables_owner_and_grants(
        owner_db_url: str, pg_server_url: str, backup_dir: Path):
    superuser_url = owner_db_url.replace("tasklets_owner@", "postgres@", 1)
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tasklets_reader'"
                            ).fetchone():
            conn.execute("CREATE ROLE tasklets_reader")
        conn.execute("GRANT SELECT ON tasks, tenants TO tasklets_reader")
        conn.execute("GRANT INSERT ON tags TO PUBLIC")
        owners_before = [line for line in schema_lines(conn) if line.startswith("owner ")]
        assert any("tasklets_reader=r/tasklets_owner" in line for line in owners_before)

        restore(Settings(database_url=superuser_url, backup_dir=backup_dir, app_env="test"),
                SAMPLE)

        assert [line for line in schema_lines(conn) if line.startswith("owner ")] == \
            owners_before


def test_production_marker_survives_the_rebuild(settings, conn):
    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    before = marker(conn)
    with pytest.raises(Refused):
        restore(settings, SAMPLE)
    restore(settings, SAMPLE, allow_production=True, safety_backup=False)
    assert marker(conn) == before == [("environment", "production")]


def test_a_backup_from_a_newer_release_is_refused_in_one_line(run_cli, settings, conn, before):
    path = write_line_backup(settings.backup_dir / "newer.json",
                             {"tenants": []}, revision="9f3e21a0c0de")
    refused = run_cli("restore", str(path))
    assert refused.returncode == 1
    error, hint = refused.stderr.strip().splitlines()
    assert error.startswith("❌ the backup was made at schema revision 9f3e21a0c0de, which this "
                            f"tasklets-ops does not know (the database is at {HEAD}")
    assert "upgrade tasklets-ops to restore it; nothing was changed" in error
    assert "9f3e21a0c0de" in hint
    assert state(conn) == before


def test_tables_the_migrations_do_not_create_make_it_refuse(settings, conn, before):
    conn.execute("CREATE TABLE audit_log (id int PRIMARY KEY)")
    with_audit_log = state(conn)
    with pytest.raises(OpsError, match=r"tables the migrations do not create \(audit_log\)"):
        restore(settings, SAMPLE)
    assert state(conn) == with_audit_log


def test_only_listed_tables_is_refused_for_an_old_backup(settings, conn, before):
    with pytest.raises(Refused, match="rebuilds every table"):
        restore(settings, SAMPLE, only_listed_tables=True)
    assert state(conn) == before


def test_allow_schema_mismatch_keeps_loading_common_columns(settings, conn, tmp_path):
    tables = {"tags": load(SAMPLE)["tables"]["tags"]}
    conn.execute("INSERT INTO tenants (id, name, slug) VALUES (1, 'SysTech', 'systech')")
    path = write_line_backup(tmp_path / "tags.json", tables, revision=FIRST)
    result = restore(settings, path, allow_schema_mismatch=True, only_listed_tables=True,
                     safety_backup=False)
    assert result.migrated_from is None and result.tables == {"tags": 18}


# ---------------------------------------------------------------- faults


@pytest.mark.faults
@pytest.mark.parametrize("trigger", [
    "line:💾 Safety backup",  # nothing dropped yet
    "line:🏗️  Schema rebuilt",  # the schema is at the old revision, empty
    "line:✅ tasks",  # half loaded
    "line:📜 Migrating",  # loaded and checked, not migrated
    f"line:✅ Applied {HEAD}",  # migrated, about to commit
])
def test_kill_9_mid_migrating_restore_leaves_schema_and_data_unchanged(
        settings, conn, before, trigger: str):
    run_killed_at(settings.database_url, str(settings.backup_dir), trigger,
                  f"from ops.restore.apply import restore; restore(settings, {str(SCALED)!r}, "
                  "report=R)")
    wait_for_tool_backends_to_end(settings.database_url)
    assert state(conn) == before
    restore(settings, SCALED, safety_backup=False)  # and it works afterwards
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 506


@pytest.mark.faults
def test_lost_connection_mid_migration_rolls_back(settings, conn, before):
    def terminate() -> None:
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND application_name = 'tasklets-db'")

    with pytest.raises(OpsError, match="lost the database connection during the restore"):
        restore(settings, SAMPLE, report=ActAt(terminate, line="📜 Migrating"))
    assert state(conn) == before


def test_the_old_sample_upgraded_in_place_matches_the_migrated_restore(
        settings, conn, old_db_url: str, tmp_path: Path):
    """Restoring an old backup then migrating (what an upgrade does) and restoring it into
    head (the migrating restore) give the same rows."""
    old = Settings(database_url=old_db_url, backup_dir=tmp_path, app_env="test")
    restore(old, SAMPLE, safety_backup=False)
    push(old)
    restore(settings, SAMPLE, safety_backup=False)
    with psycopg.connect(old_db_url) as old_conn:
        assert table_hashes(old_conn) == table_hashes(conn)
