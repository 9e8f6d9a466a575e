"""Schema migrations (push, generate, check) against a real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from alembic import command as alembic_command
from support.migrations import FIRST, HEAD, OLD_BACKUPS

from ops.core import guard
from ops.core.catalog import current_revision, discover_tables
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.slugs import slugify
from ops.restore.apply import restore
from ops.schema import migrate
from ops.schema.models import metadata
from ops.seed.helpers import tenant_slug

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


def test_generate_without_model_changes_writes_nothing_and_says_so(run_cli):
    versions = migrate.MIGRATIONS_DIR / "versions"
    before = sorted(versions.glob("*.py"))
    result = run_cli("generate", "-m", "nothing changed",
                     env={"TASKLETS_MAKE_TARGET": "db-generate", "TASKLETS_RUN": "docker"})
    assert result.returncode == 0, result.stderr
    assert sorted(versions.glob("*.py")) == before
    assert result.stdout.splitlines() == [
        "✅ Nothing to generate: the models and the database match; no migration was written.",
        "💡 For an empty one to fill in by hand: "
        "`make db-generate m='nothing changed' ARGS=--allow-empty`"]


def test_generate_allow_empty_writes_the_empty_revision(db_url: str, tmp_path: Path):
    written = migrate.generate(Settings(database_url=db_url, backup_dir=tmp_path), "by hand",
                               allow_empty=True)
    try:
        assert written is not None and written.is_file()
        upgrade = written.read_text().split("def upgrade() -> None:")[1].split("def ")[0]
        assert [line.strip() for line in upgrade.splitlines() if line.strip()
                and not line.strip().startswith("#")] == ["pass"]
    finally:
        if written is not None:
            written.unlink()


# ---------------------------------------------------------------- 0002: minutes and slugs


def test_upgrading_the_old_sample_converts_hours_to_minutes_and_adds_slugs(
        old_db_url: str, tmp_path: Path):
    settings = Settings(database_url=old_db_url, backup_dir=tmp_path, app_env="test")
    restore(settings, OLD_BACKUPS / "0001-sample.json", safety_backup=False)
    with psycopg.connect(old_db_url) as conn:
        hours = dict(conn.execute("SELECT title, estimate_hours FROM tasks").fetchall())
    assert hours["Build the login form"] == Decimal("5.00")

    result = migrate.push(settings)

    assert result.applied == [f"{HEAD}: estimate minutes and tenant slugs"]
    with psycopg.connect(old_db_url) as conn:
        minutes = dict(conn.execute("SELECT title, estimate_minutes FROM tasks").fetchall())
        assert conn.execute("SELECT name, slug FROM tenants").fetchall() == [
            ("SysTech", "systech")]
    assert minutes == {title: int(h * 60) for title, h in hours.items()}
    assert migrate.schema_differences(settings) == []


def _old_with(old_db_url: str, sql_text: str) -> Settings:
    with psycopg.connect(old_db_url, autocommit=True) as conn:
        conn.execute(sql_text)
    return Settings(database_url=old_db_url, backup_dir=Path("."), app_env="test")


def test_slug_backfill_folds_accents_and_settles_every_collision_in_id_order(
        old_db_url: str):
    settings = _old_with(old_db_url, """
        INSERT INTO tenants (id, name) VALUES (1, 'SysTech'), (2, 'systech!'), (3, 'Café Müller'),
          (4, '🚀'), (5, '🎉'), (6, 'a-2'), (7, 'A'), (8, 'A!'), (9, 'systech 2'),
          (10, repeat('long name ', 20))""")
    migrate.push(settings)
    with psycopg.connect(old_db_url) as conn:
        slugs = dict(conn.execute("SELECT id, slug FROM tenants").fetchall())
    assert slugs == {1: "systech", 2: "systech-2", 3: "cafe-muller", 4: "tenant",
                     5: "tenant-2", 6: "a-2", 7: "a", 8: "a-3", 9: "systech-2-2",
                     10: "long-name-long-name-long-name-long-name-long-name"}
    # new tenants get the slugs the backfill gives
    for tenant_id, name in ((1, "SysTech"), (3, "Café Müller"), (4, "🚀"), (7, "A"),
                            (10, "long name " * 20)):
        assert slugify(name) == slugs[tenant_id]


def test_a_new_tenant_gets_the_next_free_slug(conn: psycopg.Connection):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('x', 'acme'), ('y', 'acme-2')")
    assert tenant_slug(conn, "ACME") == "acme-3"
    assert tenant_slug(conn, "Acme Two") == "acme-two"


def test_the_schema_refuses_a_slug_that_is_not_url_safe(conn: psycopg.Connection):
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO tenants (name, slug) VALUES ('x', 'Not Safe')")
    with pytest.raises(psycopg.errors.NotNullViolation):
        conn.execute("INSERT INTO tenants (name) VALUES ('x')")


def test_an_estimate_too_large_for_minutes_stops_the_migration_naming_the_task(
        old_db_url: str):
    settings = _old_with(old_db_url, """
        INSERT INTO tenants (id, name) VALUES (1, 'T');
        INSERT INTO products (id, tenant_id, name) VALUES (1, 1, 'P');
        INSERT INTO tasks (id, tenant_id, product_id, title, estimate_hours)
          VALUES (3, 1, 1, 'ok', 35791394.12), (4, 1, 1, 'big', 35791394.13)""")
    with pytest.raises(OpsError, match="task 4 has estimate_hours 35791394.13, more minutes "
                                       "than an integer holds"):
        migrate.push(settings)
    with psycopg.connect(old_db_url) as conn:
        assert current_revision(conn) == FIRST


def test_0002_downgrades_back_to_hours_without_slugs(old_db_url: str):
    settings = _old_with(old_db_url, """
        INSERT INTO tenants (id, name) VALUES (1, 'T');
        INSERT INTO products (id, tenant_id, name) VALUES (1, 1, 'P');
        INSERT INTO tasks (id, tenant_id, product_id, title, estimate_hours)
          VALUES (1, 1, 1, 'a', 1.50), (2, 1, 1, 'b', 0.17), (3, 1, 1, 'c', NULL)""")
    migrate.push(settings)
    alembic_command.downgrade(migrate.alembic_config(settings), FIRST)
    with psycopg.connect(old_db_url) as conn:
        assert conn.execute("SELECT estimate_hours FROM tasks ORDER BY id").fetchall() == [
            (Decimal("1.50"),), (Decimal("0.17"),), (None,)]
        columns = {c.name for t in discover_tables(conn) if t.name == "tenants"
                   for c in t.columns}
    assert "slug" not in columns


def test_push_sql_carries_the_data_migrations(run_cli):
    result = run_cli("push", "--sql", env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/none"})
    assert "round(estimate_hours * 60)" in result.stdout
    assert "UPDATE tenants SET slug = candidate" in result.stdout
