"""Custom seeds (`seeds/NAME.py` with `run(conn, report)`): list, run, errors, rollback."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.seed.builtin import run_seeds
from ops.seed.custom import available_seeds, run_seed

EXAMPLE = "example_support_rota"


def write_seed(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(dedent(body))
    return path


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    return tmp_path / "seeds"


@pytest.fixture
def custom_settings(settings: Settings, seeds_dir: Path) -> Settings:
    from dataclasses import replace

    return replace(settings, seeds_dir=seeds_dir)


def tag_names(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM tags")}


def test_list_shows_builtin_and_custom_seeds_with_docstrings(run_cli):
    result = run_cli("seed", "list")  # the project's own seeds/ folder
    assert result.returncode == 0, result.stderr
    assert "🌱 Built-in seeds:" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["lookups"] and "SysTech" in line for line in lines)
    assert any(line.split()[:1] == ["sample"] for line in lines)
    assert any(line.split()[:1] == [EXAMPLE] and "Support rota" in line for line in lines)


def test_list_reads_docstrings_without_running_seed_code(seeds_dir, tmp_path):
    marker = tmp_path / "ran"
    write_seed(seeds_dir, "noisy", f'''\
        """Adds noise."""
        open({str(marker)!r}, "w").write("ran")

        def run(conn, report):
            pass
        ''')
    write_seed(seeds_dir, "broken", "def run(conn, report) pass\n")
    write_seed(seeds_dir, "_shared", '"""A helper module, not a seed."""\n')
    seeds = {s.name: s for s in available_seeds(seeds_dir)}
    assert seeds["noisy"].summary == "Adds noise." and not seeds["noisy"].builtin
    assert "SyntaxError" in seeds["broken"].summary
    assert "_shared" not in seeds
    assert not marker.exists()


def test_example_seed_runs_and_is_idempotent(run_cli, conn):
    assert run_cli("seed").returncode == 0
    first = run_cli("seed", "run", EXAMPLE)
    assert first.returncode == 0, first.stderr
    assert "✅ Created team: Support rota" in first.stdout
    assert "✅ Created tag: on-call" in first.stdout
    assert f"✅ Seed {EXAMPLE} committed" in first.stdout
    members = conn.execute(
        "SELECT u.email, m.role FROM team_members m JOIN teams t ON t.id = m.team_id"
        " JOIN users u ON u.id = m.user_id WHERE t.name = 'Support rota' ORDER BY u.email"
    ).fetchall()
    assert members == [("john@systech.com", "member"), ("sarah@systech.com", "lead")]
    counts = conn.execute("SELECT (SELECT count(*) FROM teams), (SELECT count(*) FROM tags),"
                          " (SELECT count(*) FROM team_members)").fetchone()
    second = run_cli("seed", "run", EXAMPLE)
    assert second.returncode == 0, second.stderr
    assert "✅ Using existing team: Support rota" in second.stdout
    assert conn.execute("SELECT (SELECT count(*) FROM teams), (SELECT count(*) FROM tags),"
                        " (SELECT count(*) FROM team_members)").fetchone() == counts


def test_example_seed_without_lookups_fails_and_names_the_fix(run_cli, conn):
    result = run_cli("seed", "run", EXAMPLE)
    assert result.returncode == 1
    assert "seed lookups" in result.stderr and "rolled back" in result.stderr
    assert conn.execute("SELECT count(*) FROM teams").fetchone()[0] == 0


def test_builtin_seeds_run_by_name(custom_settings, conn):
    result = run_seed(custom_settings, "lookups")
    assert result.builtin
    assert "system-prompt" in tag_names(conn)


def test_unknown_seed_lists_the_available_ones(run_cli, seeds_dir):
    write_seed(seeds_dir, "holidays", "def run(conn, report):\n    pass\n")
    result = run_cli("seed", "run", "nope", env={"SEEDS_DIR": str(seeds_dir)})
    assert result.returncode == 1
    assert "no seed named 'nope'" in result.stderr
    assert "lookups, sample, holidays" in result.stderr


def test_seed_names_cannot_leave_the_folder(custom_settings, seeds_dir, tmp_path):
    write_seed(tmp_path, "outside", "def run(conn, report):\n    pass\n")
    with pytest.raises(OpsError, match="no seed named"):
        run_seed(custom_settings, "../outside")


def test_exception_in_run_rolls_back_everything(run_cli, conn, seeds_dir):
    write_seed(seeds_dir, "half", '''\
        def run(conn, report):
            conn.execute("INSERT INTO tenants (name, slug) VALUES ('Half', 'half')")
            report.line("✅ Created tenant: Half")
            raise ValueError("the second half is missing")
        ''')
    env = {"SEEDS_DIR": str(seeds_dir)}
    result = run_cli("seed", "run", "half", env=env)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert errors[0] == ("❌ seed half failed, everything it wrote was rolled back: "
                         "ValueError: the second half is missing")
    assert "Traceback" not in result.stderr
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
    debug = run_cli("--debug", "seed", "run", "half", env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and 'half.py", line 4' in debug.stderr


def test_database_error_in_run_rolls_back(custom_settings, conn, seeds_dir):
    write_seed(seeds_dir, "dupes", '''\
        def run(conn, report):
            conn.execute("INSERT INTO tenants (name, slug) VALUES ('Dup', 'dup')")
            conn.execute("INSERT INTO tenants (name, slug) VALUES ('Dup', 'dup')")
        ''')
    with pytest.raises(OpsError, match="UniqueViolation"):
        run_seed(custom_settings, "dupes")
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_seed_cannot_commit_behind_the_tools_back(custom_settings, conn, seeds_dir):
    write_seed(seeds_dir, "sneaky", '''\
        def run(conn, report):
            conn.execute("INSERT INTO tenants (name, slug) VALUES ('Sneaky', 'sneaky')")
            conn.commit()
        ''')
    with pytest.raises(OpsError, match="rolled back"):
        run_seed(custom_settings, "sneaky")
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_successful_custom_seed_commits(custom_settings, conn, seeds_dir):
    write_seed(seeds_dir, "holidays", '''\
        """Company holidays as tags."""
        from ops.seed.helpers import announce, get_or_create, require_systech_tenant

        def run(conn, report):
            tenant = require_systech_tenant(conn)
            _, created = get_or_create(conn, "tags", {"tenant_id": tenant, "name": "holiday"})
            announce(report, "tag", "holiday", created)
        ''')
    run_seeds(custom_settings, lookups=True, sample=False)
    result = run_seed(custom_settings, "holidays")
    assert not result.builtin and result.path.endswith("holidays.py")
    assert "holiday" in tag_names(conn)


def test_seed_file_that_fails_to_import_is_named(run_cli, seeds_dir):
    path = write_seed(seeds_dir, "bad_import", "import no_such_module_here\n")
    result = run_cli("seed", "run", "bad_import", env={"SEEDS_DIR": str(seeds_dir)})
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert str(path) in first and "failed to import" in first
    assert "no_such_module_here" in first
    assert "Traceback" not in result.stderr


def test_seed_file_with_syntax_error_is_named(custom_settings, seeds_dir):
    path = write_seed(seeds_dir, "typo", "def run(conn, report)\n    pass\n")
    with pytest.raises(OpsError, match="SyntaxError") as caught:
        run_seed(custom_settings, "typo")
    assert str(path) in caught.value.message


def test_seed_file_without_run_is_named(run_cli, seeds_dir):
    path = write_seed(seeds_dir, "norun", '"""Forgot the function."""\nX = 1\n')
    result = run_cli("seed", "run", "norun", env={"SEEDS_DIR": str(seeds_dir)})
    assert result.returncode == 1
    assert f"seed file {path} does not define run(conn, report)" in result.stderr


def test_run_with_wrong_signature_is_named(custom_settings, seeds_dir):
    write_seed(seeds_dir, "nullary", "def run():\n    pass\n")
    with pytest.raises(OpsError, match="two arguments"):
        run_seed(custom_settings, "nullary")


def test_seeds_can_import_helper_modules_from_their_folder(custom_settings, conn, seeds_dir):
    write_seed(seeds_dir, "_names", "NAMES = ('alpha', 'beta')\n")
    write_seed(seeds_dir, "greek", '''\
        from _names import NAMES

        def run(conn, report):
            for name in NAMES:
                conn.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s)", (name, name))
        ''')
    run_seed(custom_settings, "greek")
    assert {r[0] for r in conn.execute("SELECT name FROM tenants")} == {"alpha", "beta"}


def test_example_seed_is_in_the_project_seeds_folder():
    assert (PROJECT_ROOT / "seeds" / f"{EXAMPLE}.py").is_file()
