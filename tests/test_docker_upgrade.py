"""`make db-upgrade-postgres IMAGE=...` on a real compose stack: the data moves to a new volume
under the new image, checked row for row, and the stack switches; a failure leaves the old
database serving. Only PostgreSQL 15 exists as a stand-in image here, so the tests move to
the same major version on a new volume: the steps and the rollback are what they prove.

A compose project of its own (support.docker_fixtures), the steps in file order.
"""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
from dotenv import dotenv_values
from support.docker import status_counts

pytestmark = pytest.mark.docker

pytest_plugins = ["support.docker_fixtures"]

IMAGE = os.environ.get("POSTGRES_IMAGE") or "postgres:16-alpine"


def volume_of(stack, service: str = "db") -> str | None:
    """The named volume mounted at the data directory of the service's container."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                          f"label=com.docker.compose.project={stack['project']}", "--filter",
                          f"label=com.docker.compose.service={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if not ids:
        return None
    mounts = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Mounts}}", ids[0]],
                                       capture_output=True, text=True, check=True).stdout)
    return next(m["Name"] for m in mounts if m["Destination"] == "/var/lib/postgresql/data")


def volume_exists(name: str) -> bool:
    return subprocess.run(["docker", "volume", "inspect", name],
                          capture_output=True).returncode == 0


def volume_holds_data(name: str) -> bool:
    """Whether the volume exists with files in it (compose creates every volume the file
    declares, empty, whenever it starts a service)."""
    if not volume_exists(name):
        return False
    listed = subprocess.run(["docker", "run", "--rm", "-v", f"{name}:/v", "--entrypoint", "ls",
                             IMAGE, "-A", "/v"], capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


def api_health(stack) -> dict:
    url = f"http://127.0.0.1:{stack['env']['API_PORT']}/api/health"
    return httpx.get(url, timeout=10).json()


@pytest.fixture(scope="module")
def before(stack) -> dict:
    """A seeded stack, and what it holds."""
    stack["make"]("db-fresh")
    return status_counts(stack["make"])["tables"]


def test_a_command_that_fails_stops_the_upgrade_and_says_so(stack, before):
    settings_before = stack["env_file"].read_text()

    failed = stack["make"]("db-upgrade-postgres", f"IMAGE={IMAGE}", check=False,
                           extra_env={"BACKUP_JOBS": "none"})  # the ops container refuses it

    assert failed.returncode != 0
    assert "BACKUP_JOBS" in failed.stderr
    assert any(line.startswith("❌ the old database") for line in failed.stderr.splitlines())
    assert volume_of(stack) == f"{stack['project']}_pgdata"
    assert stack["env_file"].read_text() == settings_before


def test_a_failure_after_the_new_volume_started_leaves_the_old_database_serving(stack, before):
    settings_before = stack["env_file"].read_text()

    failed = stack["make"]("db-upgrade-postgres", f"IMAGE={IMAGE}", check=False,
                           extra_env={"TASKLETS_UPGRADE_FAIL_AFTER": "new-database-started"})

    assert failed.returncode != 0
    assert "🆕 New database started" in failed.stdout
    assert "❌ the old database" in failed.stderr and "still serves, unchanged" in failed.stderr
    assert volume_of(stack) == f"{stack['project']}_pgdata"
    assert volume_of(stack, "db-upgrade") is None
    assert not volume_holds_data(f"{stack['project']}_pgdata-next")  # the copy is gone
    assert stack["env_file"].read_text() == settings_before
    assert status_counts(stack["make"])["tables"] == before


def test_the_upgrade_moves_the_data_to_a_new_volume_and_switches_the_stack(stack, before):
    stack["make"]("up")  # the api: stopped while the data moves, serving the new db after

    moved = stack["make"]("db-upgrade-postgres", f"IMAGE={IMAGE}")

    lines = moved.stdout.splitlines()
    assert lines[:2] == [f"🐘 Upgrading the database: {IMAGE} (volume pgdata) → {IMAGE} "
                         "(volume pgdata-next)",
                         "⏸️  Stopping the api: nothing may write while the data moves"]
    assert any(line.startswith("✅ The database holds exactly the backup's data")
               for line in lines)
    assert lines[-2] == f"✅ The stack now runs {IMAGE} on volume pgdata-next (settings in " \
        f"{stack['env_file']})."
    assert volume_of(stack) == f"{stack['project']}_pgdata-next"
    assert volume_holds_data(f"{stack['project']}_pgdata")  # kept until finish
    settings = dotenv_values(stack["env_file"])
    assert (settings["POSTGRES_VOLUME"], settings["POSTGRES_PREVIOUS_VOLUME"]) == (
        "pgdata-next", "pgdata")
    assert settings["POSTGRES_IMAGE"] == IMAGE
    assert status_counts(stack["make"])["tables"] == before
    health = api_health(stack)
    assert health["database"] == "reachable"
    assert health["schemaRevision"] == health["headRevision"]


def test_a_second_upgrade_waits_until_the_first_is_finished(stack, before):
    refused = stack["make"]("db-upgrade-postgres", f"IMAGE={IMAGE}", check=False)
    assert refused.returncode != 0
    assert "is not finished; nothing was changed" in refused.stderr
    assert volume_of(stack) == f"{stack['project']}_pgdata-next"


def test_finish_deletes_the_old_volume_and_the_stack_keeps_working(stack, before):
    finished = stack["make"]("db-upgrade-postgres-finish")

    assert f"Deleted the old database's volume {stack['project']}_pgdata" in finished.stdout
    assert not volume_holds_data(f"{stack['project']}_pgdata")
    settings = dotenv_values(stack["env_file"])
    assert "POSTGRES_PREVIOUS_VOLUME" not in settings
    assert settings["POSTGRES_VOLUME"] == "pgdata-next"
    stack["make"]("down")  # a restarted stack comes back on the new volume
    assert status_counts(stack["make"])["tables"] == before
    assert volume_of(stack) == f"{stack['project']}_pgdata-next"
