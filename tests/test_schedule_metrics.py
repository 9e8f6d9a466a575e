"""The metrics the alert rules (deploy/prometheus/alerts.yml) read, from real cycles against a
throwaway PostgreSQL: the allowed age, when a cycle or a drill last failed, and how many
backups in the store failed verification. What the rules make of them is tested by promtool
(test_alert_rules.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from support.faults import ActAt
from support.webhook import parse_metrics
from test_drill import tamper

from ops.backup.archive import Archive
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.output import SILENT, Reporter
from ops.schedule.cycle import CycleOptions, CycleResult, run_cycle
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Redactor
from ops.schedule.scheduler import SchedulerOptions, run_scheduler


def cycle(settings: Settings, metrics: BackupMetrics,
          report: Reporter = SILENT) -> CycleResult:
    return run_cycle(settings, CycleOptions(), metrics=metrics, notifier=None,
                     redact=Redactor(settings), report=report)


def samples(metrics: BackupMetrics) -> dict[str, float]:
    return parse_metrics(metrics.text())


def test_the_allowed_age_is_exported_from_backup_max_age(settings: Settings, sample: dict,
                                                          cli_env: dict, tmp_path: Path):
    assert samples(BackupMetrics())["tasklets_backup_max_age_seconds"] == 26 * 3600
    assert samples(BackupMetrics(timedelta(hours=2)))["tasklets_backup_max_age_seconds"] == 7200

    written = tmp_path / "tasklets.prom"
    done = subprocess.run([sys.executable, "-m", "ops", "schedule", "--once", "--metrics-file",
                           str(written)], env={**cli_env, "BACKUP_MAX_AGE": "90s"},
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert parse_metrics(written.read_text())["tasklets_backup_max_age_seconds"] == 90

    refused = subprocess.run([sys.executable, "-m", "ops", "schedule", "--once"],
                             env={**cli_env, "BACKUP_MAX_AGE": "soon"}, cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "cannot read age 'soon'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_failed_cycle_is_newer_than_the_last_success_until_a_cycle_succeeds(
        settings: Settings, sample: dict):
    metrics = BackupMetrics()
    assert cycle(settings, metrics).result == "success"
    succeeded = samples(metrics)["tasklets_backup_last_success_timestamp_seconds"]
    assert samples(metrics)["tasklets_backup_last_failure_timestamp_seconds"] == 0

    dead = settings.with_url("postgresql://postgres@127.0.0.1:1/nothing")
    assert cycle(dead, metrics).result == "failure"
    failed = samples(metrics)
    assert failed["tasklets_backup_last_failure_timestamp_seconds"] > succeeded
    assert failed["tasklets_backup_last_success_timestamp_seconds"] == succeeded

    assert cycle(settings, metrics).result == "success"
    recovered = samples(metrics)
    assert recovered["tasklets_backup_last_success_timestamp_seconds"] > \
        recovered["tasklets_backup_last_failure_timestamp_seconds"] > 0


def test_a_failed_drill_has_its_own_failure_time_not_the_backups(settings: Settings,
                                                                   sample: dict):
    metrics = BackupMetrics()
    results: list[CycleResult] = []

    def tamper_newest() -> None:
        tamper(Archive.at(settings.backup_dir).backups()[0].path)

    run_scheduler(settings, SchedulerOptions(cycle=CycleOptions(), drill_every=timedelta(days=7)),
                  metrics=metrics, notifier=None, on_cycle=results.append,
                  report=ActAt(tamper_newest, line="🔍 Verified"))

    assert results[0].stage == "drill"
    found = samples(metrics)
    assert found["tasklets_restore_drill_last_failure_timestamp_seconds"] >= \
        found["tasklets_backup_last_success_timestamp_seconds"] > 0
    assert found["tasklets_restore_drill_last_success_timestamp_seconds"] == 0
    assert found["tasklets_backup_last_failure_timestamp_seconds"] == 0


def test_a_backup_that_fails_verification_counts_as_bad_until_it_is_deleted(
        settings: Settings, sample: dict):
    metrics = BackupMetrics()
    assert cycle(settings, metrics).result == "success"
    assert samples(metrics)["tasklets_backup_bad_backups"] == 0

    def tamper_new() -> None:
        tamper(Archive.at(settings.backup_dir).backups()[0].path)

    failed = cycle(settings, metrics, report=ActAt(tamper_new, line="✅ backup-"))
    assert (failed.result, failed.stage) == ("failure", "verify")
    assert samples(metrics)["tasklets_backup_bad_backups"] == 1
    restarted = BackupMetrics()  # a restarted scheduler finds the verdict in the store
    restarted.seed(Archive.at(settings.backup_dir))
    assert samples(restarted)["tasklets_backup_bad_backups"] == 1

    Archive.at(settings.backup_dir).backups()[0].ref.delete()
    assert cycle(settings, metrics).result == "success"
    assert samples(metrics)["tasklets_backup_bad_backups"] == 0
