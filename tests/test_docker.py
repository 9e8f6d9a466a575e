"""The Docker bundle end to end, driven only through `make` like a user would.

One compose project (unique COMPOSE_PROJECT_NAME, its own env file, backups dir and ports) is
shared by the whole module; the tests run in file order, each step building on the last:
fresh → status → backup → verify → reset → restore → import beads → import beads via the API
→ down -v. What each command does is tested in its own module; here: that make runs it in the
container with the right mounts, settings and exit codes.

Skipped with the reason when no Docker engine answers, unless TASKLETS_REQUIRE_DOCKER=1 (CI),
where a missing engine is a failure. Base images come from the environment (POSTGRES_IMAGE,
PYTHON_IMAGE), as `.ci/run` exports them on machines that cannot pull.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from dotenv import dotenv_values
from support.docker import MAKE_TIMEOUT, status_counts, write_beads_file
from support.make import probed, write_probe_seed
from support.webhook import scrape

from ops.backup.files import parse_backup_name
from ops.backup.integrity import SIDECAR_SUFFIX
from ops.dev.cluster import free_port

pytestmark = pytest.mark.docker

pytest_plugins = ["support.docker_fixtures"]


def test_db_fresh_creates_the_schema_and_seeds_lookups_and_sample_data(stack):
    stack["make"]("db-fresh")

    status = status_counts(stack["make"])
    assert status["up_to_date"] is True
    tables = status["tables"]
    assert tables["tenants"] >= 1
    assert tables["tags"] >= 18
    assert tables["users"] >= 8
    assert tables["products"] >= 4
    stack["counts"]["fresh"] = tables


@pytest.mark.security
def test_db_studio_serves_adminer_that_logs_in_to_the_db_and_lists_the_app_tables(stack):
    stack["make"]("db-studio")
    settings = dotenv_values(stack["env_file"])
    user, database = settings["POSTGRES_USER"], settings["POSTGRES_DB"]

    base = f"http://127.0.0.1:{stack['env']['ADMINER_PORT']}/"
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as adminer:
        _wait_for_http(adminer)
        logged_in = adminer.post("/", data={  # Adminer's login form
            "auth[driver]": "pgsql", "auth[server]": "db", "auth[username]": user,
            "auth[password]": settings["POSTGRES_PASSWORD"], "auth[db]": database})
        assert logged_in.status_code == 200
        assert "Invalid credentials" not in logged_in.text
        tables = adminer.get("/", params={"pgsql": "db", "username": user, "db": database,
                                          "ns": "public"})

    assert tables.status_code == 200
    for table in ("tenants", "users", "products"):
        assert f"select={table}" in tables.text, tables.text[-2000:]


def _wait_for_http(client: httpx.Client, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"nothing answers on {client.base_url} after {seconds} s", pytrace=False)
        time.sleep(0.5)


def test_db_backup_writes_a_file_the_host_user_owns_to_the_mounted_backups_dir(stack):
    stack["make"]("db-backup")

    files = sorted(p for p in stack["backups"].iterdir()
                   if p.name.startswith("backup-") and p.suffix != SIDECAR_SUFFIX)
    assert len(files) == 1, [p.name for p in stack["backups"].iterdir()]
    info = files[0].stat()
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    assert info.st_size > 0
    assert files[0].read_bytes()[:1] in (b"{", b"\x28", b"\x1f")  # JSON, zstd or gzip
    assert status_counts(stack["make"])["latest_backup"]["name"] == files[0].name
    stack["backup"] = files[0]


def test_db_verify_checks_a_backup_named_by_its_host_path(stack):
    result = stack["make"]("db-verify", f"BACKUP={stack['backup']}")

    assert "Backup verified" in result.stdout


def test_db_reset_refuses_without_confirm_and_empties_every_table_with_confirm_yes(stack):
    refused = stack["make"]("db-reset", check=False)
    assert refused.returncode != 0
    assert "`make db-reset CONFIRM=yes`" in refused.stderr  # the hint names the make target
    assert "tasklets-db" not in refused.stderr
    # the CLI's status (2: usage) reaches make; compose's own lines about it do not
    assert refused.stderr.rstrip().endswith(" db-reset] Error 2"), refused.stderr
    assert not [line for line in refused.stderr.splitlines()
                if line.strip().isdigit() or "_run" in line], refused.stderr

    stack["make"]("db-reset", "CONFIRM=yes")

    status = status_counts(stack["make"])
    assert status["total_rows"] == 0
    assert status["up_to_date"] is True  # the schema stays


def test_db_restore_brings_back_the_latest_backup(stack):
    stack["make"]("db-restore")

    assert status_counts(stack["make"])["tables"] == stack["counts"]["fresh"]


def test_messages_name_the_host_paths_given_not_the_container_mounts(stack):
    not_a_backup = stack["make"]("db-restore", "BACKUP=README.md", check=False)
    assert not_a_backup.returncode != 0
    assert not_a_backup.stdout == ""  # no step announced before the header was checked
    assert not_a_backup.stderr.startswith("❌ bad backup README.md: "), not_a_backup.stderr
    nothing = stack["make"]("db-generate", "m=nothing changed")
    assert "✅ Nothing to generate" in nothing.stdout
    assert "ARGS=--allow-empty" in nothing.stdout
    made = stack["make"]("db-backup")
    assert f"📁 Backup file: {stack['backups']}/" in made.stdout  # BACKUP_DIR as given
    for output in (not_a_backup, nothing, made):
        assert "/restore/" not in output.stderr + output.stdout
        assert "/app/" not in output.stderr + output.stdout
        assert " /backups/" not in output.stderr + output.stdout


def test_db_import_beads_imports_the_mounted_beads_file(stack):
    before = stack["counts"]["fresh"]  # restored just before

    stack["make"]("db-import-beads")

    after = status_counts(stack["make"])["tables"]
    assert after["epics"] == before["epics"] + 1
    assert after["features"] == before["features"] + 1
    assert after["tasks"] == before["tasks"] + 2
    stack["counts"]["imported"] = after


def test_db_import_beads_api_imports_through_the_api_service(stack):
    api_file = write_beads_file(stack["work"] / "api-issues.jsonl", "bd-api")
    before = stack["counts"]["imported"]

    stack["make"]("db-import-beads-api", f"BEADS_FILE={api_file}")

    after = status_counts(stack["make"])["tables"]
    assert after["epics"] == before["epics"] + 1
    assert after["features"] == before["features"] + 1
    assert after["tasks"] == before["tasks"] + 2


MOTO_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN pip install -q 'moto[server]>=5,<6'
CMD ["python", "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"]
"""


@pytest.fixture
def s3_in_the_stack(stack) -> Iterator[dict[str, str]]:
    """moto's S3 server as a container on the stack's network (`s3:5000` for the containers,
    published on 127.0.0.1 for this test), with a bucket; the variables that reach it."""
    image = "tasklets-test-moto:5"
    python_image = os.environ.get("PYTHON_IMAGE", "python:3.12-slim")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        subprocess.run(["docker", "build", "-q", "-t", image, "--build-arg",
                        f"PYTHON_IMAGE={python_image}", "-"], input=MOTO_DOCKERFILE, text=True,
                       check=True, capture_output=True, timeout=MAKE_TIMEOUT)
    name = f"{stack['project']}-s3"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name,
                    "--network", f"{stack['project']}_default", "--network-alias", "s3",
                    "-p", "127.0.0.1::5000", image], check=True, capture_output=True)
    try:
        port = subprocess.run(["docker", "port", name, "5000"], check=True, capture_output=True,
                              text=True).stdout.strip().rsplit(":", 1)[1]
        credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_REGION": "us-east-1"}
        for _ in range(60):
            try:
                httpx.put(f"http://127.0.0.1:{port}/container-backups", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(1)
        yield {**credentials, "AWS_ENDPOINT_URL": "http://s3:5000",
               "BACKUP_DIR": "s3://container-backups/nightly"}
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_backups_go_to_s3_encrypted_and_come_back_from_the_containers(stack, s3_in_the_stack):
    from pyrage import x25519

    identity = x25519.Identity.generate()
    key_file = stack["work"] / "backup.key"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    s3 = {**s3_in_the_stack, "BACKUP_ENCRYPT_TO": str(identity.to_public())}
    before = status_counts(stack["make"])["tables"]

    made = stack["make"]("db-backup", "ARGS=--compress", extra_env=s3)
    assert "📁 Backup file: s3://container-backups/nightly/backup-" in made.stdout
    assert ".json.zst.age (encrypted)" in made.stdout
    listed = stack["make"]("db-backups", extra_env=s3).stdout
    assert "1 backup(s) in s3://container-backups/nightly" in listed and "encrypted" in listed
    stack["make"]("db-reset", "CONFIRM=yes")
    refused = stack["make"]("db-restore", extra_env=s3, check=False)
    assert refused.returncode != 0 and "BACKUP_IDENTITY_FILE" in refused.stderr
    # the identity file on the host, mounted read-only into the one-off container
    stack["make"]("db-restore", extra_env={**s3, "BACKUP_IDENTITY_FILE": str(key_file)})

    assert status_counts(stack["make"])["tables"] == before


@pytest.mark.security
def test_settings_from_the_env_file_and_the_environment_reach_the_ops_container(stack):
    """The host's SEEDS_DIR is what the container runs seeds from; BACKUP_* pass through."""
    seeds = stack["work"] / "my seeds"
    write_probe_seed(seeds)
    env_file = stack["work"] / "settings.env"
    env_file.write_text(stack["env_file"].read_text()
                        + f"SEEDS_DIR={seeds}\nBACKUP_COMPRESS=1\nBACKUP_JOBS=3\n")

    from_file = probed(stack["make"]("db-seed-custom", "NAME=env_probe",
                                     f"ENV_FILE={env_file}").stdout)
    from_env = probed(stack["make"]("db-seed-custom", "NAME=env_probe", f"ENV_FILE={env_file}",
                                    extra_env={"BACKUP_JOBS": "4", "BACKUP_COMPRESS": "0"}).stdout)

    # Inside, the seeds run from the mount /app/seeds; output names a mount by the host folder
    # it comes from (make hands the mapping over), so that is what the probe's line shows.
    assert from_file == {
        "TASKLETS_MAKE_TARGET": "db-seed-custom", "TASKLETS_RUN": "docker",
        "SEEDS_DIR": str(seeds), "BACKUP_COMPRESS": "1", "BACKUP_JOBS": "3",
        "APP_ENV": "development", "file": f"{seeds}/env_probe.py"}
    assert (from_env["BACKUP_COMPRESS"], from_env["BACKUP_JOBS"]) == ("0", "4")


@pytest.mark.security
def test_backup_compress_in_the_env_file_writes_a_compressed_backup(stack):
    env_file = stack["work"] / "compress.env"
    env_file.write_text(stack["env_file"].read_text() + "BACKUP_COMPRESS=1\n")
    before = set(stack["backups"].iterdir())

    stack["make"]("db-backup", f"ENV_FILE={env_file}")

    written = [p.name for p in set(stack["backups"].iterdir()) - before
               if p.suffix != SIDECAR_SUFFIX]
    assert len(written) == 1 and written[0].endswith(".json.zst"), written


@pytest.mark.security
def test_database_url_replaces_the_compose_db_in_the_ops_container(stack):
    url = "postgresql://tasklets:tasklets-dev-password@db:5432/postgres"

    status = json.loads(stack["make"]("db-status", "ARGS=--json",
                                      extra_env={"DATABASE_URL": url}).stdout)

    assert status["target"] == "postgresql://tasklets:***@db:5432/postgres"
    assert status["total_rows"] == 0  # the maintenance database holds no Tasklets tables


def test_scheduler_up_starts_a_healthy_scheduler_that_serves_metrics(stack):
    newest_before = max(p.name for p in stack["backups"].iterdir()
                        if p.name.startswith("backup-") and p.suffix != SIDECAR_SUFFIX)

    up = stack["make"]("scheduler-up", extra_env={"BACKUP_SCHEDULE": "1m",
                                                  "BACKUP_KEEP_LAST": "20"})

    assert "✅ Scheduler up: metrics on http://127.0.0.1:" in up.stdout  # make saw it healthy
    project = stack["project"]
    health = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project="
                             f"{project}", "--filter", "label=com.docker.compose.service="
                             "scheduler", "--format", "{{.Status}}"],
                            capture_output=True, text=True, check=True).stdout
    assert "(healthy)" in health, health
    samples = scrape(int(stack["env"]["METRICS_PORT"]))
    newest = parse_backup_name(newest_before)[0].timestamp()
    assert samples["tasklets_backup_last_success_timestamp_seconds"] >= newest
    assert samples["tasklets_backup_failures_total"] == 0


def test_testdb_up_serves_fresh_seeded_databases_the_host_can_use(stack):
    port = free_port()
    up = stack["make"]("testdb-up", extra_env={"TESTDB_PORT": str(port)})

    assert f"✅ Test databases on http://127.0.0.1:{port}" in up.stdout  # healthy
    base = f"http://127.0.0.1:{port}"
    token = {"Authorization": "Bearer dev-testdb-token-change-me"}  # .env.example's
    assert httpx.post(base + "/databases", json={}).status_code == 401
    got = [httpx.post(base + "/databases", json={}, headers=token, timeout=120).json()
           for _ in range(2)]
    assert got[0]["name"] != got[1]["name"]
    for lease in got:  # the URL names the db as the host reaches it: lookups + sample in it
        with psycopg.connect(lease["url"], connect_timeout=10) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 8
            assert conn.execute("SELECT count(*) FROM tags").fetchone()[0] >= 18
        gone = httpx.delete(f"{base}/databases/{lease['name']}", headers=token)
        assert gone.status_code == 204


def test_down_v_removes_the_containers_and_the_data_volume(stack):
    stack["make"]("down", "ARGS=-v --remove-orphans")

    label = f"label=com.docker.compose.project={stack['project']}"
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                                capture_output=True, text=True, check=True).stdout
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label],
                             capture_output=True, text=True, check=True).stdout
    assert containers.strip() == ""
    assert volumes.strip() == ""


@pytest.mark.security
def test_down_again_on_a_stopped_stack_says_nothing(stack):
    again = stack["make"]("down")
    volumes_again = stack["make"]("down", "ARGS=-v")

    assert again.stderr == ""
    assert volumes_again.stderr == ""  # no "Volume ... not found"
    assert volumes_again.stdout == ""  # nor the compose command line
