"""Helpers of the container tests, which drive a compose stack only through `make` (the
`stack` fixture is in support.docker_fixtures)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

MAKE_TIMEOUT = 600
Make = Callable[..., subprocess.CompletedProcess[str]]


def why_no_docker() -> str | None:
    """None when a Docker engine and a compose command answer, else the reason."""
    if not shutil.which("docker"):
        return "the docker client is not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    if not v2 and not shutil.which("docker-compose"):
        return "neither `docker compose` nor `docker-compose` is installed"
    if not shutil.which("make"):
        return "make is not installed"
    return None


def _beads_line(issue_id: str, title: str, issue_type: str, parent: str | None = None,
                **extra: object) -> str:
    issue: dict[str, object] = {
        "id": issue_id, "title": title, "status": "open", "priority": 2,
        "issue_type": issue_type, "created_at": "2025-01-02T03:04:05Z",
        "updated_at": "2025-01-02T03:04:05Z", **extra,
    }
    if parent:
        issue["dependencies"] = [{"issue_id": issue_id, "depends_on_id": parent,
                                  "type": "parent-child"}]
    return json.dumps(issue)


def write_beads_file(path: Path, prefix: str) -> Path:
    """One epic, one feature under it and two tasks under the feature."""
    lines = [
        _beads_line(f"{prefix}-e1", "Container epic", "epic", labels=["docker"]),
        _beads_line(f"{prefix}-f1", "Container feature", "feature", f"{prefix}-e1"),
        _beads_line(f"{prefix}-t1", "Container task", "task", f"{prefix}-f1"),
        _beads_line(f"{prefix}-t2", "Container bug", "bug", f"{prefix}-f1"),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def status_counts(make: Make) -> dict[str, object]:
    """`make db-status ARGS=--json`: stdout must be exactly the JSON document."""
    return json.loads(make("db-status", "ARGS=--json").stdout)
