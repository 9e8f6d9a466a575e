"""The compose stack of the container tests: one private project per test module (its own
COMPOSE_PROJECT_NAME, env file, backups directory and ports), driven only through `make`.

    pytest_plugins = ["support.docker_fixtures"]   # the module-scoped `stack` fixture

Skipped with the reason when no Docker engine answers, unless TASKLETS_REQUIRE_DOCKER=1 (CI),
where a missing engine is a failure. Base images come from the environment (POSTGRES_IMAGE,
PYTHON_IMAGE), as `.ci/run` exports them on machines that cannot pull.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from ops.core.config import PROJECT_ROOT
from ops.dev.cluster import free_port
from support.docker import MAKE_TIMEOUT, why_no_docker, write_beads_file


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A private compose project driven by `make`; torn down with its volumes afterwards."""
    reason = why_no_docker()
    if reason:
        if os.environ.get("TASKLETS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"TASKLETS_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
        pytest.skip(f"container tests need Docker: {reason}")

    work = tmp_path_factory.mktemp("docker")
    backups = work / "backups"
    backups.mkdir()
    env_file = work / "stack.env"
    shutil.copy(PROJECT_ROOT / ".env.example", env_file)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POSTGRES_", "DATABASE_", "MAKE", "MFLAGS"))
           and k not in {"APP_ENV", "BACKUP_DIR", "BACKUP_COMPRESS", "BACKUP_JOBS", "BEADS_FILE",
                         "SEEDS_DIR", "SECRET_KEY", "COMPOSE", "OPS_IMAGE"}}
    for image in ("POSTGRES_IMAGE", "PYTHON_IMAGE"):
        if os.environ.get(image):
            env[image] = os.environ[image]
    env.update(
        COMPOSE_PROJECT_NAME=f"tasklets-test-{uuid.uuid4().hex[:8]}",
        BACKUP_DIR=str(backups),
        BEADS_FILE=str(write_beads_file(work / "issues.jsonl", "bd-ctr")),
        POSTGRES_PORT=str(free_port()),
        API_PORT=str(free_port()),
        ADMINER_PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
        PROMETHEUS_PORT=str(free_port()),
        APP_ENV="development",
    )

    def make(target: str, *variables: str, check: bool = True,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["make", "--no-print-directory", target, f"ENV_FILE={env_file}", *variables],
            cwd=PROJECT_ROOT, env={**env, **(extra_env or {})}, capture_output=True, text=True,
            timeout=MAKE_TIMEOUT,
        )
        if check and result.returncode != 0:
            pytest.fail(f"make {target} {' '.join(variables)} exited {result.returncode}\n"
                        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}",
                        pytrace=False)
        return result

    try:
        yield {"make": make, "backups": backups, "work": work, "env_file": env_file,
               "env": env, "project": env["COMPOSE_PROJECT_NAME"], "counts": {}}
    finally:
        make("down", "ARGS=-v --remove-orphans", check=False)
