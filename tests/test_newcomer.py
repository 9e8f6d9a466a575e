"""A newcomer's first hour, README in hand: the paper cuts of that walk-through, each as the
check that would have caught it (settings file, docs, hints, messages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops.core.config import PROJECT_ROOT
from ops.core.defaults import DEFAULT_COMPRESSION
from ops.core.output import host_paths, record_invocation, suggest_flag


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
