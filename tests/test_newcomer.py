"""A newcomer's first hour, README in hand: the paper cuts of that walk-through, each as the
check that would have caught it (settings file, docs, hints, messages)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ops.core.config import PROJECT_ROOT
from ops.core.defaults import DEFAULT_COMPRESSION
from ops.core.output import host_paths, record_invocation, suggest_flag
from ops.dev.cluster import free_port


def _docs() -> dict[Path, str]:
    """The README and any docs pages, which a newcomer reads as one."""
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
    return {page: page.read_text() for page in pages if page.is_file()}


def test_docs_hold_no_placeholder_where_figures_belong():
    for page, text in _docs().items():
        found = re.findall(r"\b[A-Z]+(?:_[A-Z]+)*_(?:FIGURES|TODO|TBD|PLACEHOLDER)\b", text)
        assert not found, f"{page.name} still holds {found}"


def test_env_example_names_the_file_backup_compress_writes():
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    at = lines.index("BACKUP_COMPRESS=")
    comment = " ".join(line for line in lines[at - 3:at] if line.startswith("#"))
    suffixes = {"zstd": ".json.zst", "gzip": ".json.gz"}
    # "1" picks the default compression: the comment names its file first.
    named = sorted((comment.find(s), name) for name, s in suffixes.items() if s in comment)
    assert named and named[0][1] == DEFAULT_COMPRESSION, comment


MAKE_DOCKER = {"TASKLETS_MAKE_TARGET": "db-x", "TASKLETS_RUN": "docker",
               "TASKLETS_HOST_PATHS": "/backups=./backups:/beads/issues.jsonl=.beads/issues.jsonl"
                                      ":/restore/t.json=../t.json:/app/migrations=migrations"}


@pytest.mark.parametrize(("argv", "flag", "env", "expected"), [
    (["import", "beads", "--file", "/beads/issues.jsonl"], "--skip-invalid", MAKE_DOCKER,
     "`make db-import-beads BEADS_FILE=.beads/issues.jsonl ARGS=--skip-invalid`"),
    (["--env-file", ".env", "prune", "--keep", "5"], "--yes", MAKE_DOCKER,
     "`make db-prune ARGS='--keep 5 --yes'`"),
    (["restore", "/restore/t.json", "--tenant", "Globex"], "--new-ids --rename NEW", MAKE_DOCKER,
     "`make db-restore BACKUP=../t.json ARGS='--tenant Globex --new-ids --rename NEW'`"),
    (["reset", "--confirm"], "--allow-production", {**MAKE_DOCKER, "TASKLETS_RUN": "local"},
     "`make db-reset CONFIRM=yes ARGS=--allow-production RUN=local`"),
    (["prune", "--keep", "5"], "--yes", {}, "`tasklets-db prune --keep 5 --yes`"),
])
def test_a_hint_naming_a_flag_gives_the_whole_command_as_the_user_runs_it(
        monkeypatch, argv, flag, env, expected):
    for name in ("TASKLETS_MAKE_TARGET", "TASKLETS_RUN", "TASKLETS_HOST_PATHS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    record_invocation(argv)
    try:
        assert suggest_flag(flag) == expected
    finally:
        record_invocation([])


def test_messages_show_the_host_paths_behind_the_container_mounts(monkeypatch):
    monkeypatch.setenv("TASKLETS_HOST_PATHS", MAKE_DOCKER["TASKLETS_HOST_PATHS"])
    assert host_paths("bad backup /restore/t.json: not JSON; wrote /backups/a.json") == \
        "bad backup ../t.json: not JSON; wrote ./backups/a.json"
    assert host_paths("Review /app/migrations/versions/0003_x.py") == \
        "Review migrations/versions/0003_x.py"
    assert host_paths("/beads/issues.jsonl line 3: bad") == ".beads/issues.jsonl line 3: bad"
    untouched = "s3://bucket/backups/a.json /backupsX /app/migrationsX x/backups"
    assert host_paths(untouched) == untouched
    monkeypatch.delenv("TASKLETS_HOST_PATHS")
    assert host_paths("/backups/a.json") == "/backups/a.json"


def test_through_make_an_import_error_names_the_file_and_flag_as_typed(run_cli, tmp_path):
    issues = tmp_path / "issues.jsonl"
    issues.write_text('{"id": "x-1", "title": "ok", "status": "open"}\nnot json\n')
    env = {"TASKLETS_MAKE_TARGET": "db-import-beads", "TASKLETS_RUN": "docker",
           "TASKLETS_HOST_PATHS": f"{issues}=my issues.jsonl"}
    result = run_cli("import", "beads", "--file", str(issues), env=env)
    assert result.returncode == 1, result.stderr
    assert "invalid line(s) in my issues.jsonl" in result.stderr
    assert str(tmp_path) not in result.stderr
    assert ("`make db-import-beads BEADS_FILE='my issues.jsonl' ARGS=--skip-invalid`"
            in result.stderr)


def test_a_rerun_hint_never_echoes_a_credential_from_the_command_line(monkeypatch):
    monkeypatch.delenv("TASKLETS_MAKE_TARGET", raising=False)
    record_invocation(["copy", "--tenant", "Globex", "--to", "postgresql://u:s3cret@h/db"])
    try:
        assert suggest_flag("--rename NEW") == \
            "`tasklets-db copy --tenant Globex --to URL --rename NEW`"
        record_invocation(["copy", "--to", "host=h password=s3cret", "--tenant", "Globex"])
        assert "s3cret" not in suggest_flag("--rename NEW")
    finally:
        record_invocation([])


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "`make up`"),
    ({"TASKLETS_MAKE_TARGET": "db-status", "TASKLETS_RUN": "docker"}, "`make up` starts"),
    ({"TASKLETS_MAKE_TARGET": "db-status", "TASKLETS_RUN": "local"}, "`make up RUN=local`"),
])
def test_a_refused_connection_says_to_check_that_the_database_is_up(run_cli, env, expected):
    url = f"postgresql://tasklets:pw@127.0.0.1:{free_port()}/tasklets"
    result = run_cli("status", env={"DATABASE_URL": url, **env})
    assert result.returncode == 1
    message, hint = result.stderr.splitlines()
    assert message.startswith("❌ cannot connect to database 127.0.0.1:")
    assert expected in hint and "DATABASE_URL" in hint
    assert "db-status" not in hint  # not "run the command that just failed"


@pytest.fixture
def password_role(pg_cluster, pg_server_url: str):
    """A role that must give its password over TCP (the test cluster trusts everyone else)."""
    hba = pg_cluster.data_dir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all pwcheck 127.0.0.1/32 scram-sha-256\n" + original)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("CREATE ROLE pwcheck LOGIN PASSWORD 'right-password'")
        admin.execute("SELECT pg_reload_conf()")
    try:
        yield "pwcheck"
    finally:
        hba.write_text(original)
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute("DROP ROLE pwcheck")


@pytest.mark.parametrize(("run", "setting"), [("docker", "POSTGRES_PASSWORD in .env"),
                                              ("local", "LOCALPG_PASSWORD in .env")])
def test_a_wrong_password_says_to_check_the_password_in_env(run_cli, password_role,
                                                            pg_server_url: str, run, setting):
    port = conninfo_to_dict(pg_server_url)["port"]
    url = f"postgresql://{password_role}:wrong@127.0.0.1:{port}/postgres"
    result = run_cli("status", env={"DATABASE_URL": url, "TASKLETS_MAKE_TARGET": "db-status",
                                    "TASKLETS_RUN": run})
    assert result.returncode == 1
    message, hint = result.stderr.splitlines()
    assert "password authentication failed" in message and "wrong" not in message
    assert setting in hint and "DATABASE_URL" in hint
    assert "make up" not in hint


def test_restoring_a_file_that_is_no_backup_announces_no_step(run_cli, conn):
    tenants = conn.execute("SELECT count(*) FROM tenants").fetchone()[0]
    result = run_cli("restore", str(PROJECT_ROOT / "README.md"))
    assert result.returncode == 1
    assert result.stdout == ""  # no "Tables to restore", "Safety backup", "Clearing" first
    assert result.stderr.startswith("❌ bad backup README.md: ")
    assert len(result.stderr.splitlines()) <= 2
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == tenants
