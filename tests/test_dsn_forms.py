"""Every code path reaches the one database the settings name, whatever the DSN form (URL or
key=value), and PG* variables never redirect it; downgrades are guarded like `reset`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from support.databases import create_database, drop_database, with_dbname

from ops.core import guard
from ops.core.catalog import current_revision, discover_tables
from ops.core.config import PROJECT_ROOT, Settings
from ops.dev.localdb import psql_command
from ops.schema import migrate

ALEMBIC = str(Path(os.sys.executable).parent / "alembic")


def key_value(url: str) -> str:
    """The same connection as a key=value DSN."""
    return make_conninfo("", **conninfo_to_dict(url))


@pytest.fixture
def decoy(pg_server_url: str) -> Iterator[str]:
    """An empty database that PGDATABASE names: nothing may land there."""
    name = create_database(pg_server_url, "template0")
    yield name
    drop_database(pg_server_url, name)


def tables_in(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {t.name for t in discover_tables(conn)}


def test_push_migrates_the_database_a_key_value_dsn_names_not_pgdatabase(
        empty_db_url: str, decoy: str, pg_server_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGDATABASE", decoy)
    settings = Settings(database_url=key_value(empty_db_url), backup_dir=tmp_path,
                        app_env="production")
    migrate.push(settings)
    assert tables_in(empty_db_url)
    assert tables_in(with_dbname(pg_server_url, decoy)) == set()
    with psycopg.connect(empty_db_url) as conn:
        assert guard.stored_environment(conn) == "production"
    assert migrate.schema_differences(settings) == []  # `check` through the same engine


def test_cli_push_and_alembic_by_hand_follow_a_key_value_database_url(
        empty_db_url: str, decoy: str, pg_server_url: str, run_cli, tmp_path: Path):
    env = {"DATABASE_URL": key_value(empty_db_url), "PGDATABASE": decoy}
    done = run_cli("push", env=env)
    assert done.returncode == 0, done.stderr
    by_hand = subprocess.run([ALEMBIC, "current"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, env={**os.environ, **env, "APP_ENV": "test"},
                             timeout=120)
    assert by_hand.returncode == 0, by_hand.stderr
    assert migrate.head_revision(Settings(empty_db_url, tmp_path)) in by_hand.stdout
    assert tables_in(with_dbname(pg_server_url, decoy)) == set()


def test_psql_gets_the_database_the_dsn_names_and_its_password_only_in_env(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGDATABASE", "decoy")
    for dsn in ("postgresql://u:s3cret@db.example:6543/target",
                "host=db.example port=6543 user=u password=s3cret dbname=target"):
        argv, env = psql_command(dsn)
        target = conninfo_to_dict(argv[-1])
        assert target["dbname"] == "target" and target["port"] == "6543", dsn
        assert "s3cret" not in " ".join(argv) and env["PGPASSWORD"] == "s3cret"


# -- alembic downgrade on a production-marked database -------------------------------------

def alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("APP_ENV", "DATABASE_URL")}
    return subprocess.run([ALEMBIC, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**env, "DATABASE_URL": url}, timeout=120)


def test_alembic_downgrade_refuses_a_production_marked_database(db_url: str,
                                                                tmp_path: Path):
    migrate.push(Settings(db_url, tmp_path, app_env="production"))
    with psycopg.connect(db_url) as conn:
        before = current_revision(conn)
    refused = alembic("downgrade", "-1", url=db_url)
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr  # Alembic prints its "FAILED: ..." on stdout
    assert "refusing to run a downgrade on a production database" in said
    assert "Traceback" not in said
    with psycopg.connect(db_url) as conn:
        assert current_revision(conn) == before  # rolled back with the transaction
    allowed = alembic("-x", "allow-production=yes", "downgrade", "-1", url=db_url)
    assert allowed.returncode == 0, allowed.stderr
    with psycopg.connect(db_url) as conn:
        assert current_revision(conn) != before


def test_a_drill_and_status_follow_a_key_value_database_url(
        settings: Settings, sample: dict, decoy: str, pg_server_url: str, run_cli):
    from ops.backup.create import backup

    backup(settings)
    env = {"DATABASE_URL": key_value(settings.database_url), "PGDATABASE": decoy}
    drill = run_cli("verify", "--restore", "latest", env=env)
    assert drill.returncode == 0, drill.stderr
    assert "✅ Restore drill passed:" in drill.stdout
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert conninfo_to_dict(settings.database_url)["dbname"] in status.stdout
    assert decoy not in status.stdout
    assert tables_in(with_dbname(pg_server_url, decoy)) == set()
