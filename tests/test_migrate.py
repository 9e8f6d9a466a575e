"""Schema migrations (push, generate, check) against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from alembic import command as alembic_command

from ops.core import guard
from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.schema import migrate
from ops.schema.models import metadata

APP_TABLES = {t.name for t in metadata.sorted_tables} - {"ops_metadata"}


def test_push_creates_every_table_and_records_environment(empty_db_url: str, tmp_path: Path):
    settings = Settings(database_url=empty_db_url, backup_dir=tmp_path, app_env="test")
    result = migrate.push(settings)
    assert result.from_revision is None
    assert result.to_revision == migrate.head_revision(settings)
    assert result.applied and result.applied[0].startswith("0001")
    with psycopg.connect(empty_db_url) as conn:
        assert {t.name for t in discover_tables(conn)} == APP_TABLES
        assert guard.stored_environment(conn) == "test"


def test_upgrade_downgrade_upgrade_round_trip(empty_db_url: str, tmp_path: Path):
    settings = Settings(database_url=empty_db_url, backup_dir=tmp_path)
    migrate.push(settings)
    alembic_command.downgrade(migrate.alembic_config(settings), "base")
    with psycopg.connect(empty_db_url) as conn:
        assert discover_tables(conn) == []
        enums = conn.execute("SELECT count(*) FROM pg_type WHERE typtype = 'e'").fetchone()[0]
        assert enums == 0
    migrate.push(settings)
    assert migrate.schema_differences(settings) == []


def test_every_foreign_key_is_deferrable(conn: psycopg.Connection):
    tables = discover_tables(conn)
    fks = [fk for t in tables for fk in t.foreign_keys]
    assert len(fks) > 20
    assert all(fk.deferrable for fk in fks)


def test_tables_come_in_dependency_order(conn: psycopg.Connection):
    order = [t.name for t in discover_tables(conn)]
    for table in discover_tables(conn):
        for fk in table.foreign_keys:
            if fk.ref_table != table.name:
                assert order.index(fk.ref_table) < order.index(table.name), fk.name


def test_check_is_clean_on_fresh_database(run_cli):
    result = run_cli("check")
    assert result.returncode == 0, result.stderr
    assert "no drift" in result.stdout


def test_check_fails_and_names_an_ad_hoc_column(run_cli, conn: psycopg.Connection):
    conn.execute("ALTER TABLE tasks ADD COLUMN color text")
    result = run_cli("check")
    assert result.returncode == 1
    assert "tasks.color" in result.stdout
    assert "schema drift" in result.stderr


def test_push_sql_prints_ddl_without_connecting(run_cli):
    result = run_cli("push", "--sql", env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/none"})
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE tasks" in result.stdout


def test_generate_refuses_when_database_is_behind(empty_db_url: str, tmp_path: Path):
    settings = Settings(database_url=empty_db_url, backup_dir=tmp_path)
    with pytest.raises(OpsError, match="not head"):
        migrate.generate(settings, "something")
