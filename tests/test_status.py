"""status, settings, connection errors and CLI basics against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ops.core.config import PROJECT_ROOT, Settings, mask_url
from ops.schema.models import metadata
from ops.schema.status import database_status

APP_TABLES = {t.name for t in metadata.sorted_tables} - {"ops_metadata"}


def test_status_reports_revision_and_row_counts(settings: Settings, conn: psycopg.Connection):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('A', 'a'), ('B', 'b')")
    status = database_status(settings)
    assert status.up_to_date and status.current_revision == status.head_revision
    assert status.tables["tenants"] == 2
    assert set(status.tables) == APP_TABLES
    assert status.total_rows == 2


def test_status_json_is_parseable_and_names_latest_backup(run_cli, backup_dir: Path):
    (backup_dir / "backup-2024-01-08T14-30-45-123Z.json").write_text("{}")
    (backup_dir / "notes.txt").write_text("not a backup")
    result = run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["up_to_date"] is True
    assert data["tables"]["tasks"] == 0
    assert data["latest_backup"]["name"] == "backup-2024-01-08T14-30-45-123Z.json"


def test_status_on_unpushed_database_says_to_push(run_cli, empty_db_url: str):
    result = run_cli("status", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 0
    assert "PENDING MIGRATIONS" in result.stdout


def test_password_is_masked_in_status_output(run_cli, db_url: str, pg_server_url: str):
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='pw_user')"
                      " THEN CREATE ROLE pw_user LOGIN SUPERUSER PASSWORD 's3cr3t-pw'; END IF;"
                      " END $$")
    url = db_url.replace("postgres@", "pw_user:s3cr3t-pw@", 1)
    if "pw_user" not in url:
        pytest.fail(f"unexpected test URL shape: {url}")
    result = run_cli("status", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    assert "pw_user:***@" in result.stdout


def test_mask_url_hides_password_but_keeps_the_rest():
    assert mask_url("postgresql://u:p%40ss@db.example:6543/app") == \
        "postgresql://u:***@db.example:6543/app"
    assert mask_url("postgresql://u@host/app") == "postgresql://u@host/app"


@pytest.mark.security
@pytest.mark.parametrize(("dsn", "shown"), [
    ("host=db.example port=5432 dbname=app user=u password=hunter2",
     "user=u password=*** dbname=app host=db.example port=5432"),
    ("postgresql://u@db.example/app?password=hunter2&sslmode=require",
     "postgresql://u:***@db.example/app?sslmode=require"),
    ("postgresql://u:hunter2@h1:5432,h2:5433/app", "postgresql://u:***@h1:5432,h2:5433/app"),
    ("postgresql://u:hunter2@[::1]:5432/app", "postgresql://u:***@[::1]:5432/app"),
    ("host=db hunter2 dbname=app", "<unparseable connection string>"),
])
def test_mask_url_hides_the_password_in_every_dsn_form(dsn: str, shown: str):
    assert mask_url(dsn) == shown


@pytest.mark.security
@pytest.mark.parametrize("form", ["keywords", "query", "multi-host", "unparseable"])
def test_no_dsn_form_prints_the_password(run_cli, form: str):
    url = {"keywords": "host=127.0.0.1 port=1 dbname=app user=u password=hunter2",
           "query": "postgresql://u@127.0.0.1:1/app?password=hunter2",
           "multi-host": "postgresql://u:hunter2@127.0.0.1:1,127.0.0.1:2/app",
           "unparseable": "host=127.0.0.1 hunter2 dbname=app"}[form]
    for args in (["status"], ["status", "--json"]):
        result = run_cli(*args, env={"DATABASE_URL": url})
        assert result.returncode == 1
        assert "hunter2" not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_unreachable_database_gives_one_line_and_exit_1(run_cli_process):
    result = run_cli_process("status",
                             env={"DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/appdb"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert "127.0.0.1:1/appdb" in first and "refused" in first.lower()
    assert "hunter2" not in result.stderr


def test_missing_database_url_says_how_to_configure(run_cli, tmp_path: Path):
    result = run_cli("--env-file", str(tmp_path / "none"), "status",
                     env={"DATABASE_URL": ""})
    assert result.returncode == 1
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error(run_cli_process):
    assert run_cli_process("frobnicate").returncode == 2


def test_settings_assemble_url_from_postgres_variables(monkeypatch):
    from ops.core.config import load_settings

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("POSTGRES_HOST", "db")
    monkeypatch.setenv("POSTGRES_USER", "app")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss")
    monkeypatch.setenv("POSTGRES_DB", "tasklets")
    monkeypatch.setenv("POSTGRES_PORT", "5433")
    s = load_settings(env_file=None)
    assert s.database_url == "postgresql://app:p%40ss@db:5433/tasklets"
    assert s.masked_url == "postgresql://app:***@db:5433/tasklets"


def test_cli_start_up_loads_no_command_s_work_module():
    """Every command pays for start-up: the CLI imports a command's work only when it runs."""
    probe = ("import sys, ops.cli.main; "
             "print(' '.join(m for m in sys.modules if m.startswith(('ops.', 'alembic', "
             "'sqlalchemy', 'fastapi', 'api'))))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, check=True,
                                capture_output=True, text=True).stdout.split())

    assert "ops.cli.backup_cmds" in loaded  # the commands are registered...
    work = {"ops.backup.create", "ops.restore.apply", "ops.restore.reset", "ops.backup.verify",
            "ops.backup.prune", "ops.seed.builtin", "ops.seed.volume", "ops.beads.importer",
            "ops.workitems.sync", "ops.seed.custom", "ops.schema.migrate", "ops.schema.status",
            "alembic", "sqlalchemy", "fastapi"}
    assert loaded.isdisjoint(work), sorted(loaded & work)  # ...their work is not loaded


# What `--help` and parsing a command's options must not load (issue #20: start-up <= 0.3 s):
# the driver (and the asyncio it brings), Markdown help rendering, Rich's tracebacks, the
# pydantic behind Typer's option coercion, and every command's work.
NOT_AT_START_UP = ("psycopg", "psycopg_binary", "asyncio", "rich.markdown", "markdown_it",
                   "rich.traceback", "pygments", "pydantic", "rich.progress", "dotenv",
                   "fastapi", "httpx", "uvicorn", "sqlalchemy", "alembic", "api", "ops.backup",
                   "ops.restore", "ops.seed", "ops.schema", "ops.schedule", "ops.beads")

_PROBE = """
import sys
from ops.cli.main import main
from typer.main import get_command

args = sys.argv[1:]
if args[0] == "--parse-only":  # --parse-only [GLOBAL OPTIONS] COMMAND [ITS OPTIONS]: parse,
    from ops.cli.app import app  # run nothing

    group = get_command(app)
    at = next(i for i, arg in enumerate(args) if i > 0 and not arg.startswith("-")
              and not args[i - 1].startswith("--env"))
    ctx = group.make_context("tasklets-db", args[1:at + 1])
    group.get_command(ctx, args[at]).make_context(args[at], args[at + 1:], parent=ctx)
else:
    try:
        main(args)
    except SystemExit:
        pass
print("\\nMODULES", " ".join(sys.modules))
"""


def _modules_after(*args: str) -> tuple[set[str], str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=PROJECT_ROOT, check=True,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})
    head, _, modules = done.stdout.rpartition("\nMODULES ")
    return set(modules.split()), head + done.stderr


def _heavy(loaded: set[str]) -> list[str]:
    """The modules of NOT_AT_START_UP (packages with their submodules) that were loaded."""
    submodules = tuple(f"{name}." for name in NOT_AT_START_UP)
    return sorted(m for m in loaded if m in NOT_AT_START_UP or m.startswith(submodules))


@pytest.mark.parametrize("args", [
    ["--help"],
    ["reset", "--help"],
    ["backup", "--help"],
    ["seed", "sample", "--help"],
    ["reset", "--tenant"],  # a usage error: Typer's error panel
    ["--parse-only", "--env-file", "x.env", "reset", "--tenant", "acme", "--dry-run", "--json"],
    ["--parse-only", "restore", "latest", "--identity", "key.txt", "--rename", "b"],
    ["--parse-only", "prune", "--yes"],
])
def test_help_and_option_parsing_load_no_driver_markdown_or_pydantic(args: list[str]):
    loaded, output = _modules_after(*args)

    assert _heavy(loaded) == [], output
    if args[0] != "--parse-only":  # Typer's Rich help and error panels still render...
        assert "typer.rich_utils" in loaded and "─" in output, output
    assert "ops.cli.restore_cmds" in loaded  # ...and the probe did load the CLI


def test_help_output_uses_the_real_rich_classes_when_asked():
    """The stand-ins typer.rich_utils is imported against load the real class on use."""
    probe = ("import sys; from ops.cli.main import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "import typer.rich_utils as r\n"
             "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
             "md = r._make_rich_text(text='**x**', style='', markup_mode='markdown')\n"
             "import rich.markdown, rich.traceback\n"
             "assert type(md) is rich.markdown.Markdown, type(md)\n"
             "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n"
             "    tb = r.Traceback.from_exception(type(exc), exc, exc.__traceback__)\n"
             "assert type(tb) is rich.traceback.Traceback, type(tb)\n")
    subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, check=True)


def test_driver_error_is_one_line_though_main_does_not_import_psycopg(monkeypatch, capsys):
    from ops.cli import app as cli_app
    from ops.cli.main import main

    def fail(env_file: str) -> Settings:
        raise psycopg.OperationalError("FATAL:  the database system is shutting down\nDETAIL: x")

    monkeypatch.setattr(cli_app, "load_settings", fail)
    with pytest.raises(SystemExit) as exit_info:
        main(["status"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "❌ database error: the database system is shutting down\n"
