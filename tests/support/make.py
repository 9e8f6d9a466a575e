"""A custom seed that reports the settings the CLI process sees: how the Makefile and container
tests check that a setting from `.env` or the environment reaches the CLI, in either mode."""

from __future__ import annotations

import json
from pathlib import Path

PROBED = ("TASKLETS_MAKE_TARGET", "TASKLETS_RUN", "SEEDS_DIR", "BACKUP_COMPRESS",
          "BACKUP_JOBS", "APP_ENV")

PROBE_SEED = f'''"""Reports the settings this process sees."""
import json
import os


def run(conn, report):
    seen = {{name: os.environ.get(name) for name in {PROBED!r}}}
    seen["file"] = __file__
    report.line("PROBE " + json.dumps(seen))
'''


def write_probe_seed(seeds_dir: Path) -> Path:
    """seeds_dir/env_probe.py, run with `make db-seed-custom NAME=env_probe`."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    path = seeds_dir / "env_probe.py"
    path.write_text(PROBE_SEED)
    return path


def probed(stdout: str) -> dict[str, str | None]:
    """What the probe seed reported."""
    lines = [line for line in stdout.splitlines() if "PROBE " in line]
    assert len(lines) == 1, stdout
    return json.loads(lines[0].split("PROBE ", 1)[1])
