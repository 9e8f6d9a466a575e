"""The Makefile without Docker: `help`, the one-line no-engine message and RUN=local.

RUN=local runs are pointed at the test database with DATABASE_URL (so the project's own
.localpg cluster is never started here) and at an empty ENV_FILE (so the developer's .env
does not leak in).
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict
from support.make import probed, write_probe_seed

from ops.core.config import PROJECT_ROOT
from ops.dev.cluster import free_port

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")

TARGETS = [
    "help", "up", "down", "logs", "build", "dev", "test", "bench", "lint", "db-push",
    "db-generate", "db-check", "db-status", "db-backup", "db-backups", "db-verify", "db-prune",
    "db-reset", "db-restore", "db-copy", "db-seed-lookups", "db-seed-sample", "db-seed-demo",
    "db-seed", "db-seed-custom", "db-import-beads", "db-import-beads-api", "db-fresh",
    "db-studio", "db-shell", "db-upgrade-postgres", "db-upgrade-postgres-finish", "testdb-up",
    "db-compare", "db-anonymize-check", "db-backups-check", "db-seed-list",
]


def make(*args: str, env: dict[str, str] | None = None,
         cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("POSTGRES_", "DATABASE_", "MAKE", "MFLAGS", "COMPOSE", "BACKUP_"))
            and k not in {"OPS_IMAGE", "SEEDS_DIR"}}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def compose_env(cwd: Path = PROJECT_ROOT, **env: str) -> dict[str, str]:
    """What `eval "$(make -s compose-env)"` exports, as a dict."""
    result = make("-s", "compose-env", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    script = result.stdout + 'env -0'
    out = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"]},
                         capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@pytest.fixture
def local_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return {"DATABASE_URL": db_url, "ENV_FILE": str(env_file), "APP_ENV": "test",
            "BACKUP_DIR": str(tmp_path / "backups")}


def test_help_lists_every_target_with_one_line_each():
    result = make("help")

    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert sorted(listed) == sorted(set(listed))  # one line each
    assert set(TARGETS) <= set(listed)


@pytest.mark.security
def test_help_colours_target_names_only_on_a_terminal():
    piped = make("help")
    assert "\x1b" not in piped.stdout

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAKE", "MFLAGS")) and k != "NO_COLOR"}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(["make", "--no-print-directory", "help"], cwd=PROJECT_ROOT,
                                stdout=follower, stderr=subprocess.DEVNULL, env=env)
        os.close(follower)
        out = b""
        while chunk := _read_pty(leader):
            out += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
    assert b"\x1b[36mdb-reset" in out


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed and everything was read
        return b""


def test_db_targets_without_a_docker_engine_say_so_in_one_line_pointing_at_run_local():
    result = make("db-status", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "No Docker engine answers" in lines[0]
    assert "make db-status RUN=local" in lines[0]


def test_run_local_runs_the_cli_in_the_venv_against_database_url(local_env):
    result = make("db-status", "RUN=local", "ARGS=--json", env=local_env)

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["up_to_date"] is True
    assert status["environment"] == "test"


def test_run_local_db_reset_needs_confirm_yes(local_env, conn):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme')")

    refused = make("db-reset", "RUN=local", env=local_env)
    assert refused.returncode != 0
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1

    done = make("db-reset", "RUN=local", "CONFIRM=yes", env=local_env)
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_db_generate_without_a_message_says_how_to_give_one(local_env):
    result = make("db-generate", "RUN=local", env=local_env)

    assert result.returncode != 0
    assert 'needs m=' in result.stderr


def test_db_upgrade_postgres_needs_an_image_docker_and_no_overriding_settings(tmp_path: Path):
    local = make("db-upgrade-postgres", "IMAGE=postgres:17-alpine", "RUN=local")
    assert local.returncode != 0
    assert "moves the compose database to another image (Docker)" in local.stderr

    env = stand_in_docker(tmp_path)
    no_image = make("db-upgrade-postgres", env=env)
    assert no_image.returncode != 0 and "needs IMAGE=..." in no_image.stderr
    overridden = make("db-upgrade-postgres", "IMAGE=postgres:17-alpine",
                      env={**env, "POSTGRES_IMAGE": "postgres:16-alpine"})
    assert overridden.returncode != 0
    assert "POSTGRES_IMAGE=postgres:16-alpine is set in your environment" in overridden.stderr
    remote = make("db-upgrade-postgres", "IMAGE=postgres:17-alpine",
                  env={**env, "DATABASE_URL": "postgresql://u@db.example.com/x"})
    assert remote.returncode != 0 and "DATABASE_URL is set" in remote.stderr


def stand_in_docker(tmp_path: Path, *, v2_answers: bool = False,
                    compose_script: str = "exit 0") -> dict[str, str]:
    """Environment with a stand-in `docker` (an engine that answers; `docker compose` only when
    v2_answers) and `docker-compose` (running compose_script) first on PATH, and an empty
    ENV_FILE: what make would run shows with `make -n`, without Docker."""
    shims = tmp_path / "bin"
    shims.mkdir()
    compose_version = "exit 0" if v2_answers else "exit 1"
    (shims / "docker").write_text(
        f'#!/bin/sh\n[ "$1 $2" = "compose version" ] && {compose_version}\nexit 0\n')
    (shims / "docker-compose").write_text(f"#!/bin/bash\n{compose_script}\n")
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return {"PATH": f"{shims}:{os.environ['PATH']}", "ENV_FILE": str(env_file)}


@pytest.mark.parametrize(("v2_answers", "expected"), [
    (True, "docker compose --env-file"),
    (False, "docker-compose --env-file"),
])
def test_make_picks_compose_v2_when_it_answers_else_docker_compose_1(
        tmp_path: Path, v2_answers: bool, expected: str):
    env = stand_in_docker(tmp_path, v2_answers=v2_answers)
    env_file = env["ENV_FILE"]

    result = make("-n", "db-status", env=env)

    assert result.returncode == 0, result.stderr
    run_line = [line for line in result.stdout.splitlines() if " run --rm " in line]
    assert len(run_line) == 1, result.stdout
    assert run_line[0].startswith(f"docker/compose-quiet {expected} {env_file} run --rm")
    assert run_line[0].endswith("ops tasklets-db status ")


@pytest.mark.security
def test_two_checkouts_with_the_same_folder_name_get_their_own_project_and_ops_image(
        tmp_path: Path):
    names = []
    for parent in ("first", "second"):
        checkout = tmp_path / parent / "Tasklets Ops"
        checkout.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / "Makefile", checkout)
        exported = compose_env(checkout, ENV_FILE=str(tmp_path / "none.env"))
        names.append((exported["COMPOSE_PROJECT_NAME"], exported["OPS_IMAGE"]))

    (project_a, image_a), (project_b, image_b) = names
    assert project_a != project_b and image_a != image_b
    for project, image in names:
        assert re.fullmatch(r"tasklets-ops-[0-9]+", project), project  # valid for compose 1 and 2
        assert image == f"tasklets-ops:{project}"


@pytest.mark.security
def test_compose_project_name_and_ops_image_from_the_env_file_win(tmp_path: Path):
    env_file = tmp_path / "named.env"
    env_file.write_text("COMPOSE_PROJECT_NAME=mystack\nOPS_IMAGE=registry.example/ops:1\n")

    exported = compose_env(ENV_FILE=str(env_file))

    assert exported["COMPOSE_PROJECT_NAME"] == "mystack"
    assert exported["OPS_IMAGE"] == "registry.example/ops:1"
    assert exported["UID"] == str(os.getuid()) and exported["GID"] == str(os.getgid())


@pytest.mark.security
@pytest.mark.parametrize("url", [
    "postgresql://tasklets:s3cret-pw@db.example:5432/tasklets?sslmode=disable",
    "postgresql://tasklets@db.example:5432/tasklets?password=s3cret-pw",
    "host=db.example port=5432 user=tasklets password=s3cret-pw dbname=tasklets",
])
def test_db_shell_run_local_hands_psql_the_password_in_its_environment_never_in_argv(
        tmp_path: Path, url: str):
    """A stand-in psql on PATH records what `ps` would show (its argv) and its PGPASSWORD."""
    shims = tmp_path / "bin"
    shims.mkdir()
    record = tmp_path / "psql.json"
    (shims / "psql").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'password': os.environ.get('PGPASSWORD')}}, "
        f"open({str(record)!r}, 'w'))\n")
    (shims / "psql").chmod(0o755)
    env_file = tmp_path / "empty.env"
    env_file.write_text("")

    result = make("db-shell", "RUN=local", env={
        "PATH": f"{shims}:{os.environ['PATH']}", "ENV_FILE": str(env_file), "DATABASE_URL": url})

    assert result.returncode == 0, result.stderr
    seen = json.loads(record.read_text())
    assert seen["password"] == "s3cret-pw"
    assert not any("s3cret-pw" in arg for arg in seen["argv"]), seen["argv"]
    assert conninfo_to_dict(seen["argv"][-1]) == {
        "host": "db.example", "port": "5432", "user": "tasklets", "dbname": "tasklets",
        **({"sslmode": "disable"} if "sslmode" in url else {})}


@pytest.mark.security
def test_up_run_local_names_the_database_with_its_password_masked(tmp_path: Path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")

    result = make("up", "RUN=local", env={
        "ENV_FILE": str(env_file),
        "DATABASE_URL": "postgresql://tasklets:s3cret-pw@db.example:5432/tasklets"})

    assert result.returncode == 0, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "✅ Database: postgresql://tasklets:***@db.example:5432/tasklets" in result.stdout


# Every target that runs the CLI, with the variables it needs.
CLI_TARGETS = [
    ("db-push",), ("db-generate", "m=add color"), ("db-check",), ("db-status",),
    ("db-backup",), ("db-backups",), ("db-verify",), ("db-prune",), ("db-reset",),
    ("db-restore",), ("db-copy",), ("db-seed-lookups",), ("db-seed-sample",), ("db-seed-demo",),
    ("db-seed",), ("db-seed-custom", "NAME=example_support_rota"), ("db-import-beads",),
    ("db-import-beads-api",), ("db-fresh",),
]


@pytest.mark.security
@pytest.mark.parametrize("run", ["docker", "local"])
@pytest.mark.parametrize("target", CLI_TARGETS, ids=lambda t: t[0])
def test_every_cli_target_tells_the_cli_its_make_target_and_mode(
        tmp_path: Path, target: tuple[str, ...], run: str):
    """The CLI's hints name what the user typed (`make db-reset CONFIRM=yes`) from these."""
    result = make("-n", *target, f"RUN={run}", env=stand_in_docker(tmp_path))

    assert result.returncode == 0, result.stderr
    cli_lines = [line for line in result.stdout.splitlines() if "tasklets-db" in line]
    assert len(cli_lines) == 1, result.stdout
    if run == "docker":
        expected = f"-e TASKLETS_MAKE_TARGET={target[0]} -e TASKLETS_RUN=docker "
        assert expected in cli_lines[0].split(" ops tasklets-db ")[0]
    else:
        expected = f"TASKLETS_MAKE_TARGET={target[0]} TASKLETS_RUN=local .venv/bin/tasklets-db "
        assert expected in cli_lines[0]


V1_FAILING_RUN = r"""
case " $* " in
  *" run "*)
    printf 'Creating tasklets-x_ops_run ... \r\n' >&2
    printf 'Creating tasklets-x_ops_run ... done\r\n' >&2
    echo "❌ reset deletes ALL data in every table; refusing without --confirm" >&2
    echo 2 >&2
    exit 2 ;;
  *" down "*)
    echo "Removing network tasklets-x_default" >&2
    echo "Network tasklets-x_default not found." >&2 ;;
esac
"""


@pytest.mark.security
def test_docker_runs_keep_the_cli_exit_status_and_errors_without_compose_1_noise(
        tmp_path: Path):
    """docker-compose 1.29 wraps a failing one-off run in "Creating ..._run ... done" lines and
    a bare "2" (its exit code, logged as an error); a second `down` says the network is gone."""
    env = {**stand_in_docker(tmp_path, compose_script=V1_FAILING_RUN),
           "OPS_IMAGE": "stand-in:test", "BACKUP_DIR": str(tmp_path / "backups")}
    try:
        refused = make("db-reset", env=env)
        down = make("down", env=env)
    finally:
        (PROJECT_ROOT / "build" / ".ops-image-stand-in_test").unlink(missing_ok=True)

    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines()  # not the image build's lines
             if not line.startswith(("🔨 Building", "   ✅ Image built"))]
    assert lines[0] == "❌ reset deletes ALL data in every table; refusing without --confirm"
    assert len(lines) == 2 and lines[1].endswith(" db-reset] Error 2"), lines
    assert down.returncode == 0
    assert down.stderr == ""


@pytest.mark.security
def test_dev_run_local_writes_env_from_the_example_and_serves_with_its_secret_key(
        db_url: str, tmp_path: Path):
    env_file = tmp_path / "fresh.env"
    port = free_port()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("POSTGRES_", "DATABASE_", "MAKE", "MFLAGS"))
            and k not in {"SECRET_KEY", "APP_ENV"}}
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "dev", "RUN=local", f"ENV_FILE={env_file}",
         f"API_PORT={port}"], cwd=PROJECT_ROOT, env={**base, "DATABASE_URL": db_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"make dev RUN=local did not serve: {proc.poll()}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        stderr = proc.communicate(timeout=30)[1]

    def without_salt(text: str) -> list[str]:  # make generates the salt (test_installation_secrets)
        return [line for line in text.splitlines() if not line.startswith("ANONYMIZE_SALT=")]

    assert without_salt(env_file.read_text()) == \
        without_salt((PROJECT_ROOT / ".env.example").read_text())
    assert f"📝 Created {env_file} from .env.example" in stderr
    assert "SECRET_KEY" not in stderr


@pytest.mark.security
def test_run_local_settings_from_the_env_file_and_the_environment_reach_the_cli(
        local_env, tmp_path: Path):
    seeds = tmp_path / "my seeds"
    probe = write_probe_seed(seeds)
    Path(local_env["ENV_FILE"]).write_text(
        f"SEEDS_DIR={seeds}\nBACKUP_COMPRESS=1\nBACKUP_JOBS=3\n")

    from_file = make("db-seed-custom", "NAME=env_probe", "RUN=local", env=local_env)
    from_env = make("db-seed-custom", "NAME=env_probe", "RUN=local",
                    env={**local_env, "BACKUP_JOBS": "4", "BACKUP_COMPRESS": "0"})

    assert from_file.returncode == 0, from_file.stderr
    assert probed(from_file.stdout) == {
        "TASKLETS_MAKE_TARGET": "db-seed-custom", "TASKLETS_RUN": "local",
        "SEEDS_DIR": str(seeds), "BACKUP_COMPRESS": "1", "BACKUP_JOBS": "3",
        "APP_ENV": "test", "file": str(probe)}
    assert from_env.returncode == 0, from_env.stderr
    assert {k: probed(from_env.stdout)[k] for k in ("BACKUP_COMPRESS", "BACKUP_JOBS")} == {
        "BACKUP_COMPRESS": "0", "BACKUP_JOBS": "4"}


@pytest.mark.security
@pytest.mark.parametrize("url", [
    "postgresql://tasklets:s3cret-pw@localhost:5432/tasklets",
    "postgres://tasklets:s3cret-pw@127.0.0.1/tasklets",
    "postgresql+psycopg://tasklets:s3cret-pw@[::1]:5432/tasklets",
    "postgresql:///tasklets?password=s3cret-pw",
    "host=localhost dbname=tasklets password=s3cret-pw",
])
@pytest.mark.parametrize("source", ["environment", "env file"])
def test_docker_targets_refuse_a_database_url_on_this_machine_in_one_line(
        tmp_path: Path, url: str, source: str):
    env = stand_in_docker(tmp_path)
    if source == "environment":
        env["DATABASE_URL"] = url
    else:
        Path(env["ENV_FILE"]).write_text(f"DATABASE_URL={url}\n")

    result = make("db-status", env=env)

    assert result.returncode != 0
    assert "s3cret-pw" not in result.stdout + result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("❌ DATABASE_URL points at this machine")
    assert first.endswith("make db-status RUN=local")


@pytest.mark.security
def test_docker_runs_against_a_database_url_leave_the_compose_db_stopped(tmp_path: Path):
    env = stand_in_docker(tmp_path)
    own = make("-n", "db-status", env=env)
    external = make("-n", "db-status",
                    env={**env, "DATABASE_URL": "postgresql://u:pw@db.example.com/tasklets"})

    assert " run --rm -T --no-deps " not in own.stdout
    assert " run --rm -T --no-deps " in external.stdout


@pytest.mark.security
def test_docker_targets_refuse_a_missing_seeds_dir_in_one_line(tmp_path: Path):
    missing = tmp_path / "no-such-seeds"

    result = make("db-status", env={**stand_in_docker(tmp_path), "SEEDS_DIR": str(missing)})

    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith(f"❌ SEEDS_DIR {missing} is not a directory")
    assert not missing.exists()


@pytest.mark.parametrize("run", ["docker", "local"])
def test_db_fresh_from_passes_the_snapshot_on_and_mounts_a_host_file_read_only(
        tmp_path: Path, run: str):
    snapshot = tmp_path / "snap.json.gz"
    snapshot.write_bytes(b"")
    env = stand_in_docker(tmp_path)
    [line] = [line for line in make("-n", "db-fresh", f"FROM={snapshot}", f"RUN={run}",
                                    env=env).stdout.splitlines() if "tasklets-db" in line]
    if run == "docker":
        assert f'-v "{snapshot}:/restore/snap.json.gz:ro"' in line
        assert line.endswith("fresh --from '/restore/snap.json.gz' ")
    else:
        assert line.endswith(f"fresh --from '{snapshot}' ")
    [url] = [line for line in make("-n", "db-fresh", "FROM=s3://bucket/snap.json.gz",
                                   f"RUN={run}", env=env).stdout.splitlines()
             if "tasklets-db" in line]
    assert url.endswith("fresh --from 's3://bucket/snap.json.gz' ") and "/restore/" not in url
    [plain] = [line for line in make("-n", "db-fresh", f"RUN={run}", env=env).stdout.splitlines()
               if "tasklets-db" in line]
    assert plain.endswith(" fresh  ") and "--from" not in plain


def test_db_fresh_from_refuses_a_backup_that_is_not_anonymized(local_env, conn, tmp_path: Path):
    from ops.backup.create import backup
    from ops.core.config import Settings

    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Initech', 'initech')")
    plain = backup(Settings(database_url=local_env["DATABASE_URL"], backup_dir=tmp_path),
                   output=tmp_path / "plain.json").path
    result = make("db-fresh", f"FROM={plain}", "RUN=local", env=local_env)
    assert result.returncode == 2
    assert "❌ plain.json is not an anonymized snapshot" in result.stderr
    # the hint is the make line to run, the flag in ARGS
    assert f"`make db-fresh FROM={plain} ARGS=--allow-real-data RUN=local`" in result.stderr
    assert "make db-backup ARGS=--anonymize RUN=local" in result.stderr
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1


@pytest.mark.security
def test_monitoring_up_refuses_a_prometheus_config_that_is_not_a_file_and_run_local(
        tmp_path: Path):
    missing = tmp_path / "no-such-prometheus.yml"

    result = make("monitoring-up", env={**stand_in_docker(tmp_path),
                                        "PROMETHEUS_CONFIG": str(missing)})
    local = make("monitoring-up", "RUN=local")

    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith(
        f"❌ PROMETHEUS_CONFIG {missing} is not a file")
    assert not missing.exists()  # Docker never got to create a directory there
    assert local.returncode != 0 and "monitoring-up runs Prometheus in Docker" in local.stderr
    assert "monitoring-up" in make("help").stdout


def test_testdb_up_without_a_token_says_so_in_one_line_before_building(tmp_path: Path):
    calls = tmp_path / "compose.log"
    env = stand_in_docker(tmp_path, compose_script=f'echo "$*" >> {calls}')
    Path(env["ENV_FILE"]).write_text("POSTGRES_PASSWORD=x\nSECRET_KEY=y\n")
    result = make("testdb-up", env=env)

    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith("❌ TESTDB_TOKEN is empty")
    assert not calls.exists()  # no image built, nothing started


def test_compare_anonymize_check_backups_check_and_seed_list_have_make_forms(
        local_env, conn, tmp_path: Path):
    listed = make("db-seed-list", "RUN=local", env=local_env)
    assert listed.returncode == 0, listed.stderr
    assert "sample" in listed.stdout
    classified = make("db-anonymize-check", "RUN=local", env=local_env)
    assert classified.returncode == 0, classified.stderr
    stale = make("db-backups-check", "RUN=local", env=local_env)  # no backup yet
    assert stale.returncode != 0 and stale.stderr.startswith("❌ no good full backup"), stale.stderr
    made = make("db-backup", "RUN=local", env=local_env)
    assert made.returncode == 0, made.stderr
    assert make("db-backups-check", "RUN=local", env=local_env).returncode == 0
    same = make("db-compare", "RUN=local", env=local_env)
    assert same.returncode == 0, same.stderr
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Drift', 'drift')")
    drifted = make("db-compare", "RUN=local", env=local_env)
    assert drifted.returncode != 0 and "tenants" in drifted.stdout + drifted.stderr


def test_a_first_run_local_says_it_creates_the_venv_and_installs_only_what_running_needs(
        local_env, tmp_path: Path):
    fresh = f"VENV={tmp_path / 'venv'}"
    running = make("-n", "db-status", "RUN=local", fresh, env=local_env).stdout
    assert "Creating" in running and "pip install" in running
    installs = [line for line in running.splitlines() if " -e " in line]
    assert installs and all(".[test]" not in line for line in installs), installs
    testing = make("-n", "test", fresh, env=local_env).stdout
    assert any("-e '.[test]'" in line for line in testing.splitlines()), testing


def test_dev_with_the_api_port_taken_says_to_set_api_port(local_env):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = make("dev", "RUN=local", f"API_PORT={port}", env=local_env)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        f"❌ Port {port} on 127.0.0.1 is taken by another program, so make dev cannot serve "
        f"there. 💡 Use another one: make dev API_PORT={port + 1} (or set API_PORT in "
        f"{local_env['ENV_FILE']})")


@pytest.mark.parametrize("noise", [
    ["Removing volume p_pgdata", "Volume p_pgdata not found."],  # a second `down -v`
    ['Creating volume "p_pgdata-next" with default driver'],  # after upgrade-postgres-finish
    ["p_db_1 is up-to-date"],  # db-shell, or a run whose db already runs
])
def test_compose_noise_the_readme_says_is_hidden_is_hidden(noise: list[str]):
    script = "; ".join(f"echo {shlex.quote(line)} >&2" for line in [*noise, "kept"])
    result = subprocess.run([str(PROJECT_ROOT / "docker" / "compose-quiet"), "bash", "-c",
                             script + "; exit 3"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stderr == "kept\n"
