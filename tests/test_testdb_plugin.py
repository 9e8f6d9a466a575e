"""The pytest plugin as another project uses it: a suite of its own, run with xdist workers
against this session's server. The template is built once across the workers, no two tests
share a database, and the workers leave no database behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from ops.testdb.marks import pool_databases

SUITE = '''
import json, os
import psycopg
import pytest

@pytest.mark.parametrize("number", range(12))
@pytest.mark.tasklets_db(seeds=["probe"])
def test_a_database_of_its_own(number, tasklets_db, tasklets_db_pool, tmp_path_factory):
    with psycopg.connect(tasklets_db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO probe VALUES (%s)", (str(number),))
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 2  # seed's + mine
    record = {"test": number, "database": tasklets_db.name,
              "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
              "built": tasklets_db_pool.source.counters.templates_built}
    with open(os.environ["RECORDS"], "a") as out:
        out.write(json.dumps(record) + "\\n")


def test_the_schema_only_default(tasklets_db):
    with psycopg.connect(tasklets_db.url) as conn:
        assert conn.execute("SELECT to_regclass('probe')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
'''

PROBE = '''"""One probe row."""
def run(conn, report):
    conn.execute("CREATE TABLE probe (word text)")
    conn.execute("INSERT INTO probe VALUES ('seeded {marker}')")
'''


def test_xdist_workers_share_one_template_and_never_a_database(pg_server_url: str,
                                                               tmp_path: Path):
    project = tmp_path / "app"
    (project / "seeds").mkdir(parents=True)
    (project / "test_app.py").write_text(SUITE)
    (project / "seeds" / "probe.py").write_text(PROBE.format(marker=tmp_path.name))
    records = tmp_path / "records.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTDB_", "DATABASE_"))}
    env.update(TESTDB_DATABASE_URL=pg_server_url, SEEDS_DIR=str(project / "seeds"),
               RECORDS=str(records))
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "3", "-q", "-p",
                           "no:cacheprovider", str(project)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "13 passed" in done.stdout
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 12
    assert len({row["database"] for row in rows}) == 12  # never the same database
    assert len({row["worker"] for row in rows}) > 1  # really in parallel
    built = {}
    for row in rows:
        built[row["worker"]] = max(built.get(row["worker"], 0), row["built"])
    assert sum(built.values()) == 1  # one worker built the template, the others reused it
    owners = {row["database"].split("_")[2] for row in rows}
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        left = [db.name for db in pool_databases(conn) if db.owner in owners]
    assert left == []  # each worker's pool dropped what it made
