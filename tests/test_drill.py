"""Restore drills (`verify --restore`): a good backup passes, a tampered one fails, and the live
database is never connected to (it refuses connections while the drill runs) nor changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.databases import create_database, drop_database, with_dbname
from support.restore import insert_sample, table_hashes

from ops.backup.create import backup
from ops.core.config import Settings
from ops.restore.drill import SCRATCH_PREFIX, restore_drill


def scratch_databases(server_url: str) -> list[str]:
    with psycopg.connect(server_url, autocommit=True) as admin:
        return [r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (SCRATCH_PREFIX + "%",))]


@contextmanager
def refusing_connections(server_url: str, url: str) -> Iterator[None]:
    """The database of `url` accepts no new connection (of any role) inside the block."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    alter = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL(alter.format("{}", "false")).format(sql.Identifier(name)))
        try:
            with pytest.raises(psycopg.OperationalError, match="not currently accepting"):
                psycopg.connect(url).close()
            yield
        finally:
            admin.execute(sql.SQL(alter.format("{}", "true")).format(sql.Identifier(name)))


def tamper(path: Path) -> None:
    """Change one character of one row, keeping the file valid JSON (only sha256 notices)."""
    data = path.read_bytes()
    assert b"Acme" in data
    path.write_bytes(data.replace(b"Acme", b"Acmf", 1))


def test_a_drill_restores_checks_and_drops_its_scratch_database_without_touching_the_live_one(
        settings: Settings, sample: dict, conn, pg_server_url: str):
    made = backup(settings)
    before = table_hashes(conn)

    with refusing_connections(pg_server_url, settings.database_url):
        result = restore_drill(settings, "latest")

    assert result.ok, result.problem
    assert result.scratch_created and result.scratch.split("/")[-1].startswith(SCRATCH_PREFIX)
    assert result.tables == made.tables and result.total_rows == made.total_rows > 0
    assert result.checked == ["restore: row counts and sha256 against meta",
                              "server: row counts and sha256 match meta",
                              "check: no schema drift"]
    assert table_hashes(conn) == before == sample
    assert scratch_databases(pg_server_url) == []


def test_a_drill_of_a_tampered_backup_fails_in_one_line_and_leaves_nothing(
        settings: Settings, sample: dict, conn, pg_server_url: str, run_cli):
    made = backup(settings)
    tamper(made.path)

    with refusing_connections(pg_server_url, settings.database_url):
        result = restore_drill(settings, made.name)
        done = run_cli("verify", "--restore", made.name)

    assert not result.ok
    assert "does not match its sha256" in result.problem
    assert done.returncode == 1
    assert done.stderr.startswith(f"❌ restore drill of {made.path} FAILED: ")
    assert "The live database was not touched" in done.stderr
    assert "Traceback" not in done.stderr
    assert table_hashes(conn) == sample
    assert scratch_databases(pg_server_url) == []


def test_verify_restore_prints_each_check_and_json(settings: Settings, sample: dict, run_cli):
    backup(settings)

    text = run_cli("verify", "--restore")
    as_json = run_cli("verify", "--restore", "latest", "--json")

    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("🧪 Restore drill: backup-")
    assert "✅ Serialised again on the server: row counts and sha256 match meta" in text.stdout
    assert "🗑️  Dropped the scratch database tasklets_drill_" in text.stdout
    assert "✅ Restore drill passed:" in text.stdout
    import json

    assert json.loads(as_json.stdout)["ok"] is True


def test_a_drill_into_scratch_database_url_empties_it_afterwards(
        settings: Settings, sample: dict, pg_server_url: str, template_db: str):
    backup(settings)
    name = create_database(pg_server_url, template_db)
    scratch_url = with_dbname(pg_server_url, name)
    try:
        result = restore_drill(Settings(**{**vars(settings),
                                           "scratch_database_url": scratch_url}))
        assert result.ok, result.problem
        assert not result.scratch_created and result.scratch.endswith(f"/{name}")
        with psycopg.connect(scratch_url) as scratch:
            assert all(rows == 0 for rows, _ in table_hashes(scratch).values())
    finally:
        drop_database(pg_server_url, name)


def test_a_drill_refuses_a_scratch_database_url_that_is_the_live_database(
        settings: Settings, sample: dict, conn):
    backup(settings)

    result = restore_drill(Settings(**{**vars(settings),
                                       "scratch_database_url": settings.database_url}))

    assert not result.ok and "reaches the live database" in result.problem
    assert table_hashes(conn) == sample


def alias(url: str) -> str:
    """The same database's URL through another host name."""
    assert "@127.0.0.1:" in url
    return url.replace("@127.0.0.1:", "@localhost:")


def test_a_drill_refuses_the_live_database_through_another_host_alias(
        settings: Settings, sample: dict, conn, run_cli):
    backup(settings)

    done = run_cli("verify", "--restore",
                   env={"SCRATCH_DATABASE_URL": alias(settings.database_url)})

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "SCRATCH_DATABASE_URL (localhost:" in done.stderr
    assert "reaches the live database (the server identifies both as" in done.stderr
    assert table_hashes(conn) == sample


@pytest.fixture
def scratch_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A database at head for SCRATCH_DATABASE_URL."""
    name = create_database(pg_server_url, template_db)
    yield with_dbname(pg_server_url, name)
    drop_database(pg_server_url, name)


def drill_into(settings: Settings, url: str):
    return restore_drill(Settings(**{**vars(settings), "scratch_database_url": url}))


def test_a_drill_refuses_a_production_marked_scratch_database(settings: Settings, sample: dict,
                                                              scratch_url: str):
    backup(settings)
    with psycopg.connect(scratch_url, autocommit=True) as scratch:
        scratch.execute("INSERT INTO ops_metadata (key, value) VALUES ('environment', "
                        "'production') ON CONFLICT (key) DO UPDATE SET value = 'production'")
        insert_sample(scratch)
        before = table_hashes(scratch)

        result = drill_into(settings, scratch_url)

        assert not result.ok and "is production-marked" in result.problem
        assert table_hashes(scratch) == before


def test_a_drill_refuses_a_scratch_database_holding_app_data_unless_it_marked_it(
        settings: Settings, sample: dict, scratch_url: str):
    backup(settings)
    with psycopg.connect(scratch_url, autocommit=True) as scratch:
        insert_sample(scratch)
        before = table_hashes(scratch)

        result = drill_into(settings, scratch_url)

        assert not result.ok and table_hashes(scratch) == before
        assert f"the scratch database {result.scratch} holds the app's data (tenants: 2, " \
            in result.problem
        scratch.execute("TRUNCATE tenants CASCADE")

        assert drill_into(settings, scratch_url).ok  # empty: used, and marked as the drill's
        insert_sample(scratch)  # as a drill killed half-way leaves it
        result = drill_into(settings, scratch_url)
        assert result.ok, result.problem


def test_the_schedulers_drill_refuses_the_live_database_through_an_alias(
        settings: Settings, sample: dict, conn):
    from ops.schedule.cycle import CycleOptions, CycleResult
    from ops.schedule.metrics import BackupMetrics
    from ops.schedule.scheduler import SchedulerOptions, run_scheduler

    aliased = Settings(**{**vars(settings),
                          "scratch_database_url": alias(settings.database_url)})
    results: list[CycleResult] = []

    status = run_scheduler(aliased, SchedulerOptions(cycle=CycleOptions(),
                                                     drill_every=timedelta(days=7)),
                           metrics=BackupMetrics(), notifier=None, on_cycle=results.append)

    assert status == 1 and results[0].stage == "drill"
    assert "reaches the live database" in results[0].error
    assert table_hashes(conn) == sample
