"""No silent minute: a first (cold) build of the ops image says how it goes at least every
10 s, through the same script make builds with on a first `make db-fresh`."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from support.docker import MAKE_TIMEOUT, why_no_docker

from ops.core.config import PROJECT_ROOT

pytestmark = pytest.mark.docker

MAX_SILENCE = 10.0


def test_a_cold_build_of_the_ops_image_prints_progress_at_least_every_10_s(tmp_path):
    reason = why_no_docker()
    if reason:
        if os.environ.get("TASKLETS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"TASKLETS_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
        pytest.skip(f"container tests need Docker: {reason}")
    env_file = tmp_path / "build.env"
    env_file.write_text((PROJECT_ROOT / ".env.example").read_text())
    tag = f"tasklets-ops:cold-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env.update(OPS_IMAGE=tag, COMPOSE_PROJECT_NAME=f"tasklets-build-{uuid.uuid4().hex[:8]}")
    # What a first `make db-fresh` runs before anything else: the same script.
    planned = subprocess.run(["make", "-n", "--no-print-directory", "db-fresh",
                              f"ENV_FILE={env_file}"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert "docker/build-progress" in planned.stdout and "build -q" not in planned.stdout

    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    build = subprocess.Popen(
        ["make", "--no-print-directory", "build", f"ENV_FILE={env_file}",
         "BUILD_FLAGS=--no-cache"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert build.stdout is not None
        for line in build.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
        build.wait(timeout=MAKE_TIMEOUT)
        ended = time.monotonic() - started
    finally:
        if build.poll() is None:
            build.kill()
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        stamp = f"build/.ops-image-{tag.replace(':', '_').replace('/', '_')}"
        (PROJECT_ROOT / stamp).unlink(missing_ok=True)
    shown = "\n".join(f"{at:6.1f} {text}" for at, text in lines)
    assert build.returncode == 0, shown
    stamps = [0.0, *(at for at, _ in lines), ended]
    silences = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    assert max(silences) <= MAX_SILENCE, shown
    assert ended > 20, f"not a cold build ({ended:.0f} s)\n{shown}"  # the check meant something
    steps = [text for _, text in lines if text.lstrip().startswith("[")]
    assert any("requirements.py" in step for step in steps), shown  # the dependency step
    assert lines[-1][1].strip().startswith("✅ Image built"), shown
