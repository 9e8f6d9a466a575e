"""The compose profile `capture` through make: `make capture-up` starts a healthy capture
service on the stack's db (wal_level=logical), changes land as segments in the mounted backups
directory, `make db-capture-status` and the metrics show it, `capture-down` stops it and
`db-capture-stop` drops its slot."""

from __future__ import annotations

import json
import time
import urllib.request

from ops.dev.cluster import free_port

pytest_plugins = ["support.docker_fixtures"]


def test_capture_up_stores_changes_as_segments_and_down_and_stop_clean_up(stack):
    make, backups = stack["make"], stack["backups"]
    port = str(free_port())
    env = {"CAPTURE_METRICS_PORT": port}
    make("db-fresh")
    make("capture-up", extra_env=env)
    make("db-reset", "CONFIRM=yes")  # changes (a TRUNCATE of every table) while capture runs

    deadline = time.monotonic() + 60
    while not list(backups.glob("changes-*.jsonl.zst")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(backups.glob("changes-*.jsonl.zst")), "no change segment within 60 s"
    assert list(backups.glob("backup-*")), "capture's first start takes a base backup"

    status = json.loads(make("db-capture-status", "ARGS=--json").stdout)
    assert status["exists"] and status["running"] and status["segments"] >= 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert "tasklets_capture_retained_wal_bytes" in response.read().decode()

    make("capture-down", extra_env=env)
    assert not json.loads(make("db-capture-status", "ARGS=--json").stdout)["running"]
    dropped = make("db-capture-stop")
    assert "slot tasklets_capture" in dropped.stdout
    gone = make("db-capture-status", check=False)
    assert gone.returncode != 0 and "no replication slot tasklets_capture" in gone.stderr
