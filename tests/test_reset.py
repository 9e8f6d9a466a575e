"""reset: confirmation, dry run, atomic truncation with identities restarted, production guard."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from support.restore import insert_sample, marker, table_hashes

from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.reset import reset


def test_reset_without_confirm_refuses_with_exit_2_and_touches_nothing(run_cli, conn, sample):
    result = run_cli("reset")
    assert result.returncode == 2
    assert "--confirm" in result.stderr
    assert table_hashes(conn) == sample


def test_reset_empties_every_app_table_and_restarts_identities(settings: Settings, conn,
                                                               sample: dict):
    revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    before_marker = marker(conn)

    result = reset(settings, confirm=True)

    assert list(result.tables) == list(sample)  # every table, in dependency order
    assert all(rows == 0 for rows, _ in table_hashes(conn).values())
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == revision
    assert marker(conn) == before_marker
    assert conn.execute("INSERT INTO tenants (name, slug) VALUES ('x', 'x') "
                        "RETURNING id").fetchone()[0] == 1


def test_cli_reset_prints_the_seed_lines_and_next_steps(run_cli_process, conn,
                                                        sample: dict):
    result = run_cli_process("reset", "--confirm")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["🔄 Starting database reset...", "⚠️  WARNING: This will DELETE all data!",
                         "🗑️  Truncating tables..."]
    assert "✅ tenants" in lines and "✅ comments" in lines
    assert "✅ Database reset completed!" in lines
    steps = lines[lines.index("📋 Next steps:") + 1:]
    assert steps == ["   1. bring back the latest backup: `tasklets-db restore latest`",
                     "   2. or start over with the sample data: `tasklets-db fresh`",
                     "   3. or import your beads issues: `tasklets-db import beads`"]


@pytest.mark.parametrize("run_mode", ["docker", "local"])
def test_through_make_hints_and_next_steps_name_make_targets(run_cli, conn, sample: dict,
                                                             run_mode: str):
    via_make = {"TASKLETS_MAKE_TARGET": "db-reset", "TASKLETS_RUN": run_mode}
    local = " RUN=local" if run_mode == "local" else ""
    refused = run_cli("reset", env=via_make)
    assert refused.returncode == 2
    assert f"`make db-reset CONFIRM=yes{local}`" in refused.stderr
    assert f"`make db-reset ARGS=--dry-run{local}`" in refused.stderr
    assert "tasklets-db" not in refused.stderr
    done = run_cli("reset", "--confirm", env=via_make)
    assert f"`make db-restore BACKUP=latest{local}`" in done.stdout
    assert f"`make db-fresh{local}`" in done.stdout
    assert "db-push" not in done.stdout
    production = {**via_make, "APP_ENV": "production"}
    guarded = run_cli("reset", "--confirm", env=production)
    assert f"`make db-reset CONFIRM=yes ARGS=--allow-production{local}`" in guarded.stderr
    # Without CONFIRM=yes, the first hint already names everything a production reset needs.
    first = run_cli("reset", env=production)
    assert first.returncode == 2
    assert "refusing without --confirm --allow-production" in first.stderr
    assert f"Run `make db-reset CONFIRM=yes ARGS=--allow-production{local}`" in first.stderr


def test_dry_run_lists_tables_with_row_counts_and_changes_nothing(run_cli, conn, sample):
    result = run_cli("reset", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["tasks", "2", "rows"] for line in result.stdout.splitlines())
    assert table_hashes(conn) == sample
    as_json = json.loads(run_cli("reset", "--dry-run", "--json").stdout)
    assert as_json["dry_run"] and as_json["tables"]["tenants"] == 2


def test_reset_refuses_production_app_env_unless_allowed(run_cli, conn, sample: dict):
    refused = run_cli("reset", "--confirm", env={"APP_ENV": "production"})
    assert refused.returncode == 2
    assert "APP_ENV=production" in refused.stderr and "--allow-production" in refused.stderr
    assert table_hashes(conn) == sample
    allowed = run_cli("reset", "--confirm", "--allow-production", env={"APP_ENV": "production"})
    assert allowed.returncode == 0, allowed.stderr
    assert all(rows == 0 for rows, _ in table_hashes(conn).values())


def test_reset_refuses_a_database_whose_marker_says_production(settings: Settings, conn,
                                                               sample: dict):
    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    with pytest.raises(OpsError, match="environment marker") as caught:
        reset(settings, confirm=True)
    assert caught.value.exit_code == 2
    assert table_hashes(conn) == sample
    reset(settings, confirm=True, allow_production=True)
    assert all(rows == 0 for rows, _ in table_hashes(conn).values())
    assert marker(conn) == [("environment", "production")]


def test_reset_without_schema_says_run_push_first(empty_db_url: str, tmp_path: Path):
    settings = Settings(database_url=empty_db_url, backup_dir=tmp_path)
    with pytest.raises(OpsError) as caught:
        reset(settings, confirm=True)
    assert "push" in caught.value.hint


def test_reset_works_as_a_non_superuser_table_owner(owner_db_url: str, tmp_path: Path):
    settings = Settings(database_url=owner_db_url, backup_dir=tmp_path, app_env="test")
    with psycopg.connect(owner_db_url, autocommit=True) as conn:
        insert_sample(conn)
        reset(settings, confirm=True)
        assert all(rows == 0 for rows, _ in table_hashes(conn).values())


def test_reset_is_all_or_nothing_when_a_table_cannot_be_truncated(settings: Settings, conn,
                                                                  sample: dict):
    # A table outside the app's reach references an app table: TRUNCATE (no CASCADE) fails,
    # and not a single table may have been emptied.
    conn.execute("CREATE SCHEMA other")
    conn.execute("CREATE TABLE other.refs (tag_id bigint REFERENCES public.tags (id))")
    conn.execute("INSERT INTO other.refs VALUES (1)")
    with pytest.raises(OpsError, match="reset failed, nothing was changed"):
        reset(settings, confirm=True)
    assert table_hashes(conn) == sample
