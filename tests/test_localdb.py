"""The project-local PostgreSQL behind `make ... RUN=local` (`tasklets-db local`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ops.core.config import PROJECT_ROOT
from ops.core.errors import OpsError
from ops.dev.cluster import LocalCluster, find_bin_dir, server_user_ids
from ops.dev.localdb import (
    DEFAULT_PORT,
    PASSWORD_KEY,
    LocalDb,
    configured_url,
    ensure_local_db,
    recorded_port,
    running_local_url,
    stop_local_db,
)


@pytest.fixture
def local_dir() -> Iterator[Path]:
    """A .localpg directory in a fresh temp dir the server's user can traverse (as root); its
    env file is the `.env` beside it (see `ensure`)."""
    base = Path(tempfile.mkdtemp(prefix="tasklets-localdb-"))
    os.chmod(base, 0o755)
    try:
        yield base / ".localpg"
    finally:
        stop_local_db(base / ".localpg")
        shutil.rmtree(base, ignore_errors=True)


def ensure(local_dir: Path) -> LocalDb:
    return ensure_local_db(local_dir, env_file=local_dir.parent / ".env")


@pytest.fixture(autouse=True)
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """libpq would otherwise send a password from the environment or ~/.pgpass."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def test_ensure_local_db_creates_and_starts_a_reachable_tasklets_database(local_dir):
    db = ensure(local_dir)

    assert db.started
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "tasklets"


def test_the_bare_cli_finds_the_running_project_local_database_as_make_does(
        local_dir, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env_file = local_dir.parent / ".env"  # where ensure() keeps the password
    env_file.write_text("DATABASE_URL=\nPOSTGRES_HOST=localhost\n")
    assert running_local_url(env_file, local_dir) is None  # none created: POSTGRES_* apply
    db = ensure(local_dir)

    assert running_local_url(env_file, local_dir) == db.url
    kept = env_file.read_text()
    env_file.write_text(kept + "DATABASE_URL=postgresql://elsewhere/db\n")
    assert running_local_url(env_file, local_dir) is None  # a configured URL wins
    env_file.write_text(kept)
    stop_local_db(local_dir)
    assert running_local_url(env_file, local_dir) is None  # never started by the bare CLI
    assert not (local_dir / "data" / "postmaster.pid").exists()


def test_ensure_local_db_keeps_its_url_and_data_across_stop_and_start(local_dir):
    first = ensure(local_dir)
    with psycopg.connect(first.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    assert ensure(local_dir) == replace(first, started=False)
    assert stop_local_db(local_dir) is True
    again = ensure(local_dir)

    assert again.started and again.url == first.url
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone()[0] == 42


def test_ensure_local_db_records_another_port_when_the_default_one_is_taken(local_dir):
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen()
        except OSError:
            pass  # already taken by something else: the same situation
        db = ensure(local_dir)

    assert db.port != DEFAULT_PORT
    assert (local_dir / "port").read_text().strip() == str(db.port)
    assert str(db.port) in db.url


@pytest.mark.security
def test_a_connection_without_the_password_is_refused_over_tcp_and_the_socket(local_dir):
    db = ensure(local_dir)
    env_file = local_dir.parent / ".env"
    password = env_file.read_text().split(f"{PASSWORD_KEY}=", 1)[1].split()[0]
    assert len(password) >= 40 and f":{password}@" in db.url
    assert (env_file.stat().st_mode & 0o777) == 0o600
    assert "ANONYMIZE_SALT=" in env_file.read_text()  # generated beside it

    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    for conninfo in (f"host=127.0.0.1 port={db.port} user=postgres dbname=tasklets",
                     f"host={db.data_dir} port={db.port} user=postgres dbname=tasklets",
                     f"host=127.0.0.1 port={db.port} user=postgres dbname=tasklets "
                     "password=wrong"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(conninfo).close()


@pytest.mark.security
def test_a_cluster_from_before_passwords_is_switched_to_one(local_dir):
    """A .localpg made by an earlier version trusts every local connection: the next use
    gives it a password, in the env file, and refuses connections without it from then on."""
    local_dir.mkdir()
    old = LocalCluster(local_dir / "data", recorded_port(local_dir), find_bin_dir())
    ids = server_user_ids()
    if ids is not None:
        os.chown(local_dir, *ids)
    old.init()  # trust, as before
    trusting = f"host=127.0.0.1 port={old.port} user=postgres dbname=postgres"

    db = ensure(local_dir)
    assert db.secured and db.started
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(trusting).close()
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "tasklets"
    assert not ensure(local_dir).secured  # once


def test_a_missing_password_is_one_line_saying_where_it_belongs(local_dir):
    ensure(local_dir)
    (local_dir.parent / ".env").write_text("")
    with pytest.raises(OpsError) as raised:
        ensure(local_dir)
    assert f"needs its password, {PASSWORD_KEY} in" in raised.value.message


def test_stop_local_db_reports_false_when_no_cluster_runs(local_dir):
    assert stop_local_db(local_dir) is False


def test_configured_url_prefers_the_environment_then_the_env_file(tmp_path, monkeypatch):
    env_file = tmp_path / "local.env"
    env_file.write_text("DATABASE_URL=postgresql://file@db.example/tasklets\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    assert configured_url(env_file) == "postgresql://file@db.example/tasklets"
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@db.example/tasklets")
    assert configured_url(env_file) == "postgresql://env@db.example/tasklets"


def test_configured_url_is_none_when_database_url_is_empty_everywhere(tmp_path, monkeypatch):
    env_file = tmp_path / "local.env"
    env_file.write_text("DATABASE_URL=\nPOSTGRES_HOST=localhost\n")
    monkeypatch.setenv("DATABASE_URL", "")

    assert configured_url(env_file) is None
    assert configured_url(tmp_path / "missing.env") is None


def _localdb(*args: str, url: str, stdin: str = "",
             tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("PGPASSWORD", None)
    return subprocess.run([sys.executable, "-m", "ops", "--env-file", str(env_file), "local",
                           *args],
                          input=stdin, env=env, capture_output=True, text=True, timeout=60,
                          cwd=PROJECT_ROOT)


@pytest.mark.security
def test_psql_connects_to_the_configured_database_given_with_a_password(db_url, tmp_path):
    params = conninfo_to_dict(db_url)
    params.setdefault("password", "unused-by-trust-auth")

    result = _localdb("psql", url=make_conninfo("", **params),
                      stdin="SELECT current_database();\n", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert params["dbname"] in result.stdout


@pytest.mark.security
def test_psql_says_in_one_line_that_a_malformed_url_is_unusable_without_echoing_it(tmp_path):
    result = _localdb("psql", url="host=db password=s3cret-pw dbname", tmp_path=tmp_path)

    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    first_line = result.stderr.splitlines()[0]
    assert first_line == "❌ DATABASE_URL is not a connection string psql can use"
