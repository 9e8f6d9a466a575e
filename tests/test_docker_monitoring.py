"""Prometheus in the stack (`make monitoring-up`, compose profile `monitoring`), end to end: it
scrapes a real scheduler cycle, loads the alert rules of deploy/prometheus, finds change
capture only while it runs, and an alert goes from inactive to firing when backups stop.

Short intervals come from settings, as a user would set them: the scheduler's BACKUP_SCHEDULE
and BACKUP_MAX_AGE, and PROMETHEUS_CONFIG naming the shipped configuration with one-second
scrapes and evaluations (its jobs and rule file unchanged). The tests run in file order on
one stack (support.docker_fixtures).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import yaml

from ops.backup.archive import Archive
from ops.core.config import PROJECT_ROOT

pytestmark = pytest.mark.docker

pytest_plugins = ["support.docker_fixtures"]

MAX_AGE_SECONDS = 30
WAIT = 150  # seconds any one wait may take at most (a busy 2-core machine)


def wait_until(check: Callable[[], Any], what: str, seconds: float = WAIT) -> Any:
    """check()'s first truthy value, polled every second."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {seconds} s", pytrace=False)
        time.sleep(1)


@pytest.fixture(scope="module")
def monitored(stack) -> Iterator[dict[str, Any]]:
    """The scheduler (every 5 s, allowed age 30 s, its own backups directory) and Prometheus
    (the shipped configuration, scraping every second) up; Prometheus's API client."""
    backups = stack["work"] / "monitored"
    backups.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    for job in config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            discovery["refresh_interval"] = "1s"
    config_file = stack["work"] / "prometheus-test.yml"
    config_file.write_text(yaml.safe_dump(config))
    config_file.chmod(0o644)  # the image runs Prometheus as nobody
    stack["make"]("db-push")
    scheduler = {"BACKUP_DIR": str(backups), "BACKUP_SCHEDULE": "5s",
                 "BACKUP_MAX_AGE": f"{MAX_AGE_SECONDS}s", "BACKUP_KEEP_LAST": "3"}
    started = time.time()
    stack["make"]("scheduler-up", extra_env=scheduler)

    up = stack["make"]("monitoring-up", extra_env={"PROMETHEUS_CONFIG": str(config_file)})

    port = stack["env"]["PROMETHEUS_PORT"]
    assert f"✅ Prometheus on http://127.0.0.1:{port}" in up.stdout  # make saw it healthy
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1/", timeout=10) as api:
        yield {"api": api, "backups": backups, "started": started}


def query(api: httpx.Client, promql: str) -> dict[str, float]:
    """An instant query: {the series' labels but its name, as text: value}."""
    answer = api.get("query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    return {",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"):
            float(r["value"][1]) for r in answer["data"]["result"]}


def alert_states(api: httpx.Client) -> dict[str, str]:
    """Every alerting rule Prometheus loaded, and its state: inactive, pending or firing."""
    groups = api.get("rules", params={"type": "alert"}).json()["data"]["groups"]
    return {rule["name"]: rule["state"] for group in groups for rule in group["rules"]}


def test_prometheus_scrapes_a_real_scheduler_cycle_and_loads_every_alert_rule(monitored):
    api = monitored["api"]

    found = wait_until(lambda: query(api, 'tasklets_backup_last_success_timestamp_seconds'
                                          '{job="tasklets-scheduler"}'),
                       "backup timestamp scraped from the scheduler")

    (when,) = found.values()
    taken = {b.timestamp.timestamp() for b in Archive.at(monitored["backups"]).backups()}
    assert when >= monitored["started"] - 1  # a cycle of this scheduler, not an older backup
    assert max(taken) >= when  # in its backups directory (older ones go by retention)
    assert query(api, 'tasklets_backup_max_age_seconds') == {
        "instance=scheduler:9187,job=tasklets-scheduler": MAX_AGE_SECONDS}
    rules = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/alerts.yml").read_text())
    assert set(alert_states(api)) == {rule["alert"] for group in rules["groups"]
                                      for rule in group["rules"]}
    # An evaluation before the first scrape finds no `up` (pending); the next one, after it,
    # puts the rule back to inactive.
    wait_until(lambda: alert_states(api)["TaskletsSchedulerDown"] == "inactive",
               "TaskletsSchedulerDown inactive once the scheduler is scraped", seconds=30)
    assert alert_states(api)["TaskletsBackupTooOld"] == "inactive"


def test_the_capture_job_has_no_target_until_capture_runs_and_then_scrapes_it(stack, monitored):
    api = monitored["api"]
    assert query(api, 'up{job="tasklets-capture"}') == {}  # no target, so no alert either
    assert alert_states(api)["TaskletsCaptureDown"] == "inactive"

    # A stand-in for the capture service: its metrics, on the stack's network as `capture`.
    served = stack["work"] / "capture-metrics"
    served.mkdir()
    (served / "metrics").write_text("tasklets_capture_lag_seconds 2.5\n"
                                    "tasklets_capture_retained_wal_bytes 16384\n")
    name = f"{stack['project']}-capture"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network",
                    f"{stack['project']}_default", "--network-alias", "capture",
                    "-v", f"{served}:/srv:ro", "-w", "/srv",
                    os.environ.get("PYTHON_IMAGE", "python:3.12-slim"),
                    "python", "-m", "http.server", "9188"], check=True, capture_output=True)
    try:
        lag = wait_until(lambda: query(api, 'tasklets_capture_lag_seconds{job="tasklets-capture"}'),
                         "capture metrics scraped")
        assert list(lag.values()) == [2.5]
        assert list(query(api, 'up{job="tasklets-capture"}').values()) == [1]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_an_alert_goes_from_inactive_to_firing_when_backups_stop(stack, monitored):
    api = monitored["api"]
    states = alert_states(api)
    assert (states["TaskletsBackupTooOld"], states["TaskletsBackupFailed"]) == \
        ("inactive", "inactive")

    # Backups stop: the database goes away under a scheduler that keeps running (and scraped).
    db = subprocess.run(["docker", "ps", "-q", "--filter",
                         f"label=com.docker.compose.project={stack['project']}", "--filter",
                         "label=com.docker.compose.service=db"],
                        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["docker", "stop", *db], check=True, capture_output=True)

    def firing() -> dict[str, dict]:
        alerts = api.get("alerts").json()["data"]["alerts"]
        return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}

    wait_until(lambda: "TaskletsBackupFailed" in firing(), "TaskletsBackupFailed firing")
    too_old = wait_until(lambda: firing().get("TaskletsBackupTooOld"),
                         "TaskletsBackupTooOld firing")

    (last,) = query(api, "tasklets_backup_last_success_timestamp_seconds").values()
    active = datetime.fromisoformat(too_old["activeAt"].replace("Z", "+00:00")).timestamp()
    assert active - last >= MAX_AGE_SECONDS  # not before the newest backup was too old
    assert too_old["labels"]["severity"] == "critical"
    assert "older than BACKUP_MAX_AGE allows" in too_old["annotations"]["description"]
    assert "TaskletsSchedulerDown" not in firing()  # the scheduler itself is still scraped
