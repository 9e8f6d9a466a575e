"""`tasklets-db testdb serve` as a process of its own: the HTTP API, the CLI's get/put, the
token, and what a kill -9 leaves behind (nothing a restart does not account for)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from ops.core.config import PROJECT_ROOT
from ops.dev.cluster import free_port
from ops.testdb.marks import pool_databases

SLOW_SEED = '''"""Sleeps, so a test can kill the server in the middle of a build."""
import time
def run(conn, report):
    time.sleep(60)
'''


def _dbs(url: str) -> list:
    with psycopg.connect(url, autocommit=True) as conn:
        return pool_databases(conn)


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def serve_env(pg_server_url: str, tmp_path: Path) -> dict[str, str]:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "slow.py").write_text(SLOW_SEED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DATABASE_",
                                                                   "TESTDB_"))}
    env.update(TESTDB_DATABASE_URL=pg_server_url, SEEDS_DIR=str(seeds), APP_ENV="test",
               BACKUP_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def start_server(serve_env: dict[str, str]
                 ) -> Iterator[Callable[..., tuple[str, subprocess.Popen]]]:
    started: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True
              ) -> tuple[str, subprocess.Popen]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "ops", "testdb", "serve", "--port", str(port), *args],
            env={**serve_env, **(env or {})}, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        if wait:
            def up() -> bool:
                assert process.poll() is None, process.communicate()
                try:
                    return httpx.get(base + "/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False
            _wait_for(up, timeout=180)
        return base, process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def test_the_http_api_ensures_hands_out_and_takes_back(start_server, pg_server_url: str):
    base, process = start_server("--ready", "2")
    template = httpx.post(base + "/templates", json={}).json()
    assert not template["built"]  # the server built it as it started
    first = httpx.post(base + "/databases", json={"template": template["hash"]}).json()
    second = httpx.post(base + "/databases", json={}).json()  # the server's own template
    assert first["name"] != second["name"] and first["hash"] == template["hash"]
    with psycopg.connect(first["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    assert httpx.delete(f"{base}/databases/{first['name']}").status_code == 204
    again = httpx.delete(f"{base}/databases/{first['name']}")
    assert again.status_code == 404 and "not leased" in again.json()["error"]
    unknown = httpx.post(base + "/databases", json={"template": "f" * 24})
    assert unknown.status_code == 404 and unknown.json()["hint"]
    bad = httpx.post(base + "/templates", json={"seeds": ["nope"]})
    assert bad.status_code == 404 and "no seed named 'nope'" in bad.json()["error"]
    status = httpx.get(base + "/status").json()
    assert status["counters"]["handed_out"] == 2
    assert [lease["name"] for lease in status["leases"]] == [second["name"]]
    assert "url" not in str(status) and "postgres@" not in str(status)  # no credentials
    process.send_signal(signal.SIGTERM)  # a clean stop drops what this server made
    process.wait(timeout=60)
    assert not [db for db in _dbs(pg_server_url) if db.owner == status["owner"]]


def test_get_and_put_from_the_shell(start_server, serve_env: dict[str, str]):
    base, _ = start_server("--ready", "1")
    env = {**serve_env, "TESTDB_SERVER": base}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops", "testdb", *args], env=env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)

    got = cli("get")
    assert got.returncode == 0, got.stderr
    url = got.stdout.strip()
    assert url.startswith("postgresql://") and "\n" not in url  # stdout: the URL, only
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].startswith("tdb_")
    put = cli("put", url)
    assert put.returncode == 0 and put.stderr.startswith("✅ Returned tdb_")
    twice = cli("put", url)
    assert twice.returncode == 1 and twice.stderr.startswith("❌ tdb_")
    assert "not leased" in twice.stderr
    status = cli("status")
    assert "1 handed out" in status.stdout
    unreachable = subprocess.run([sys.executable, "-m", "ops", "testdb", "get"],
                                 env={**env, "TESTDB_SERVER": f"http://127.0.0.1:{free_port()}"},
                                 cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("❌ cannot reach the test-database server")


def test_a_token_is_required_when_set_and_beyond_loopback(start_server,
                                                          serve_env: dict[str, str]):
    refused = subprocess.run([sys.executable, "-m", "ops", "testdb", "serve", "--host",
                              "0.0.0.0", "--port", str(free_port())], env=serve_env,
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.startswith("❌ refusing to listen on 0.0.0.0 without a token")
    base, _ = start_server(env={"TESTDB_TOKEN": "s3cret-token"})
    assert httpx.get(base + "/health").status_code == 200
    assert httpx.post(base + "/databases", json={}).status_code == 401
    wrong = httpx.get(base + "/status", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.post(base + "/databases", json={},
                       headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200 and right.json()["name"].startswith("tdb_")


def test_kill_9_leaves_nothing_a_restart_cannot_account_for(start_server, pg_server_url: str):
    with psycopg.connect(pg_server_url, autocommit=True) as conn:  # not the pool's: must stay
        conn.execute("DROP DATABASE IF EXISTS tdb_keep_me")
        conn.execute("CREATE DATABASE tdb_keep_me")
    try:
        base, killed = start_server("--ready", "3")
        leased = [httpx.post(base + "/databases", json={}).json()["name"] for _ in range(2)]
        owner = httpx.get(base + "/status").json()["owner"]
        _wait_for(lambda: len([db for db in _dbs(pg_server_url) if db.owner == owner]) >= 4)
        # and one killed in the middle of a template build
        _, building = start_server("--seed", "slow", wait=False)
        _wait_for(lambda: any(db.kind == "build" for db in _dbs(pg_server_url)))
        killed.kill()
        building.kill()
        killed.wait()
        building.wait()
        left = [db for db in _dbs(pg_server_url) if db.owner == owner or db.kind == "build"]
        assert set(leased) <= {db.name for db in left}  # the kill itself drops nothing

        base, _ = start_server("--ready", "1")  # the restart accounts for them
        _wait_for(lambda: not {db.name for db in left} & {db.name for db in
                                                          _dbs(pg_server_url)})
        status = httpx.get(base + "/status").json()
        assert status["counters"]["orphans_dropped"] >= len(left)
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            names = {n for (n,) in conn.execute("SELECT datname FROM pg_database")}
        assert "tdb_keep_me" in names
        assert any(db.kind == "template" for db in _dbs(pg_server_url))  # templates stay
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS tdb_keep_me"))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_helper_takes_and_gives_back_a_database(start_server, tmp_path: Path):
    base, _ = start_server("--ready", "1", env={"TESTDB_TOKEN": "node-token"})
    suite = tmp_path / "db.test.mjs"
    helper = PROJECT_ROOT / "deploy" / "node" / "fresh-database.mjs"
    suite.write_text(f"""
import {{ test }} from 'node:test';
import assert from 'node:assert';
import {{ freshDatabase }} from '{helper}';
const seen = [];
for (const n of [1, 2, 3]) {{
  test(`test ${{n}}`, async (t) => {{
    const url = await freshDatabase(t);
    assert.match(url, /^postgresql:\\/\\/.*\\/tdb_/);
    assert.ok(!seen.includes(url));
    seen.push(url);
  }});
}}
""")
    env = {**os.environ, "TESTDB_SERVER": base, "TESTDB_TOKEN": "node-token"}
    done = subprocess.run(["node", "--test", str(suite)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 3" in done.stdout
    script = subprocess.run(["node", str(helper)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert script.returncode == 0 and script.stdout.startswith("postgresql://"), script.stderr
    status = httpx.get(base + "/status", headers={"Authorization": "Bearer node-token"}).json()
    assert status["counters"]["handed_out"] == 4 and status["leases"] == []  # all given back


def test_the_pytest_plugin_takes_its_databases_from_a_running_server(
        start_server, serve_env: dict[str, str], tmp_path: Path):
    base, _ = start_server("--ready", "2")
    project = tmp_path / "app"
    project.mkdir()
    (project / "test_remote.py").write_text('''
import psycopg, pytest

@pytest.mark.parametrize("number", range(3))
def test_a_database_from_the_server(number, tasklets_db):
    with psycopg.connect(tasklets_db.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == tasklets_db.name
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
''')
    env = {k: v for k, v in serve_env.items() if k != "TESTDB_DATABASE_URL"}
    env["TESTDB_SERVER"] = base
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(project)], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    status = httpx.get(base + "/status").json()
    assert status["counters"]["handed_out"] == 3 and status["leases"] == []
