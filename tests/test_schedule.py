"""The scheduler against real servers: a throwaway PostgreSQL, a webhook receiver on 127.0.0.1
recording every request, and /metrics scraped over a socket. Schedulers run in threads (ticks
of 1 s, stopped through their Stopper) or, for signals and exit codes, as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.faults import ActAt
from support.webhook import parse_metrics, receiver, scrape

from ops.backup.archive import Archive
from ops.backup.files import parse_backup_name
from ops.backup.freshness import check_freshness
from ops.backup.retention import RetentionPolicy
from ops.backup.verdicts import DRILLED, VERIFIED
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.schedule.cycle import CycleOptions, CycleResult
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Notifier, Redactor
from ops.schedule.scheduler import SchedulerOptions, Stopper, run_scheduler
from ops.schedule.timing import parse_schedule

EVERY_SECOND = parse_schedule(every="1s")
WAIT = 90  # seconds any one wait may take at most (a busy 2-core machine)


@dataclass
class Running:
    metrics: BackupMetrics
    results: list[CycleResult] = field(default_factory=list)
    stopper: Stopper = field(default_factory=Stopper)
    port: int = 0
    status: list[int] = field(default_factory=list)

    def of(self, kind: str) -> list[CycleResult]:
        return [r for r in list(self.results) if r.result == kind]

    def wait_for(self, condition, seconds: float = WAIT) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, [(r.result, r.error) for r in self.results]
            time.sleep(0.05)


@contextmanager
def scheduler(settings: Settings, *, notify: str | None = None, schedule=EVERY_SECOND,
              cycle: CycleOptions | None = None, serve: bool = True,
              drill_every: timedelta | None = None) -> Iterator[Running]:
    """run_scheduler in a thread with /metrics on a free port; stopped (between cycles) and
    joined on the way out, its metrics server too."""
    metrics = BackupMetrics()
    server = metrics.serve("127.0.0.1", 0) if serve else None
    running = Running(metrics, port=server.port if server else 0)
    notifier = Notifier(notify, Redactor(settings)) if notify else None
    options = SchedulerOptions(cycle=cycle or CycleOptions(), schedule=schedule,
                               drill_every=drill_every)
    thread = threading.Thread(target=lambda: running.status.append(run_scheduler(
        settings, options, metrics=metrics, notifier=notifier,
        on_cycle=running.results.append, stopper=running.stopper)), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stopper.event.set()
        thread.join(WAIT)
        if server is not None:
            server.stop()
    assert not thread.is_alive() and running.status == [0]


def backup_names(settings: Settings) -> list[str]:
    return [b.name for b in Archive.at(settings.backup_dir).backups(include_safety=False)]


def test_a_scheduler_backs_up_verifies_prunes_measures_and_notifies_every_tick(
        settings: Settings, sample: dict):
    with receiver() as hook, scheduler(settings, notify=hook.url,
                                       cycle=CycleOptions(policy=RetentionPolicy(last=2))) as run:
        run.wait_for(lambda: len(run.of("success")) >= 3)
        run.stopper.event.set()
        run.wait_for(lambda: run.status)
        samples = scrape(run.port)
        events = hook.events()
        bodies = [r.json for r in hook.requests]

    made = [r.backup for r in run.of("success")]
    assert len(made) == len(set(made)) >= 3
    assert backup_names(settings) == made[::-1][:2]  # pruned to the policy: the two newest
    assert all(r.verified == VERIFIED and r.error is None for r in run.of("success"))
    assert run.of("failure") == []
    verdicts = Archive.at(settings.backup_dir).verdicts()
    assert all(VERIFIED in verdicts.of(name) for name in made[-2:])
    assert not any(verdicts.of(name) for name in made[:-2])  # went with their backups

    assert events == ["start", "success"] * len(made)  # in order; skipped ticks are silent
    successes = [b for b in bodies if b["event"] == "success"]
    assert [b["backup"] for b in successes] == made
    assert all(b["rows"] == sum(n for n, _ in sample.values()) for b in successes)
    assert all(b["size_bytes"] > 0 and b["duration_seconds"] > 0 for b in successes)

    newest = Archive.at(settings.backup_dir).backups()[0]
    assert samples['tasklets_backup_runs_total{result="success"}'] == len(made)
    assert samples['tasklets_backup_runs_total{result="failure"}'] == 0
    assert samples["tasklets_backup_failures_total"] == 0
    assert samples["tasklets_backup_last_success_timestamp_seconds"] == \
        newest.timestamp.timestamp()
    assert samples["tasklets_backup_last_size_bytes"] == newest.size
    assert samples["tasklets_backup_last_rows"] == successes[-1]["rows"]
    assert samples["tasklets_backup_last_duration_seconds"] > 0
    assert samples["tasklets_restore_drill_last_success_timestamp_seconds"] == 0


def test_the_database_down_mid_schedule_is_a_failure_and_the_next_tick_recovers(
        settings: Settings, sample: dict, pg_cluster):
    with receiver() as hook, scheduler(settings, notify=hook.url) as run:
        run.wait_for(lambda: run.of("success"))
        pg_cluster.stop("fast")
        try:
            run.wait_for(lambda: run.of("failure"))
            failures = scrape(run.port)["tasklets_backup_failures_total"]
        finally:
            pg_cluster.start()
        recovered = len(run.results)
        run.wait_for(lambda: any(r.result == "success" for r in run.results[recovered:]))
        samples = scrape(run.port)
        bodies = [r.json for r in hook.requests]

    assert failures >= 1
    assert samples["tasklets_backup_failures_total"] == len(run.of("failure")) >= 1
    failed = next(b for b in bodies if b["event"] == "failure")
    assert failed["stage"] == "lock" and "cannot connect to database" in failed["error"]
    assert samples["tasklets_backup_last_success_timestamp_seconds"] == \
        Archive.at(settings.backup_dir).backups()[0].timestamp.timestamp()


def test_two_schedulers_take_one_backup_per_tick(settings: Settings, sample: dict):
    with scheduler(settings, serve=False) as one, scheduler(settings, serve=False) as two:
        one.wait_for(lambda: len(one.of("success")) + len(two.of("success")) >= 4
                     and one.of("skipped") + two.of("skipped"))

    made = backup_names(settings)
    assert len(made) == len(one.of("success")) + len(two.of("success"))
    seconds = [int(parse_backup_name(name)[0].timestamp()) for name in made]
    assert len(set(seconds)) == len(seconds), made  # never two backups in one tick
    assert one.of("skipped") + two.of("skipped")
    assert one.of("failure") + two.of("failure") == []


def test_repeated_failures_back_off(settings: Settings, backup_dir: Path):
    dead = settings.with_url("postgresql://postgres@127.0.0.1:1/nothing")
    with scheduler(dead, serve=False) as run:
        run.wait_for(lambda: len(run.of("failure")) >= 3)

    gaps = [(parse(r.next_run) - parse(r.slot)).total_seconds() for r in run.results[:3]]
    assert gaps[0] >= 1 and gaps[1] >= 2 and gaps[2] >= 4, gaps  # the next tick, then 1, 3 more
    assert run.results[0].stage == "lock"


def parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_a_drill_runs_when_due_and_its_metric_follows_only_a_passing_drill(
        settings: Settings, sample: dict):
    metrics = BackupMetrics()
    results: list[CycleResult] = []
    options = SchedulerOptions(cycle=CycleOptions(), drill_every=timedelta(days=7))

    status = run_scheduler(settings, options, metrics=metrics, notifier=None,
                           on_cycle=results.append)

    assert status == 0 and results[0].drill["ok"] is True
    passed = parse_metrics(metrics.text())
    assert passed["tasklets_restore_drill_last_success_timestamp_seconds"] > 0
    assert passed['tasklets_restore_drill_runs_total{result="success"}'] == 1
    assert DRILLED in Archive.at(settings.backup_dir).verdicts().of(results[0].backup)
    assert check_freshness(Archive.at(settings.backup_dir)).line.endswith(", restore-drilled)")

    # the next one-shot run starts from the store: the drill is not due for 7 days
    again = BackupMetrics()
    run_scheduler(settings, options, metrics=again, notifier=None, on_cycle=results.append)
    assert results[1].drill is None and results[1].result == "success"
    # from the store: when the drill's verdict was written, moments after the drill ended —
    # as its file's mtime, which the kernel stamps from a clock that lags by up to a tick
    # (seen: 2 ms before the drill's end, read from the system clock just earlier)
    seeded = parse_metrics(again.text())["tasklets_restore_drill_last_success_timestamp_seconds"]
    assert -0.05 <= seeded - passed["tasklets_restore_drill_last_success_timestamp_seconds"] < 60


def test_a_drill_of_a_backup_tampered_after_verification_fails_and_leaves_the_metric(
        settings: Settings, sample: dict, conn):
    from support.restore import table_hashes
    from test_drill import tamper

    metrics = BackupMetrics()
    results: list[CycleResult] = []

    def tamper_newest() -> None:
        tamper(Archive.at(settings.backup_dir).backups()[0].path)

    status = run_scheduler(settings, SchedulerOptions(cycle=CycleOptions(),
                                                      drill_every=timedelta(days=7)),
                           metrics=metrics, notifier=None, on_cycle=results.append,
                           report=ActAt(tamper_newest, line="🔍 Verified"))

    assert status == 1
    assert results[0].stage == "drill" and "sha256" in results[0].error
    samples = parse_metrics(metrics.text())
    assert samples["tasklets_restore_drill_last_success_timestamp_seconds"] == 0
    assert samples['tasklets_restore_drill_runs_total{result="failure"}'] == 1
    assert samples["tasklets_backup_failures_total"] == 1
    assert table_hashes(conn) == sample


# ---------------------------------------------------------------- as a process


PAUSE_MID_BACKUP = r"""
import sys, time
import ops.backup.create as create

original = create.stream_table

def paused(conn, table, write, advance, *args, **kwargs):
    done = original(conn, table, write, advance, *args, **kwargs)
    if table.name == "clients":  # some tables are in the file, the rest are not
        print("MID-BACKUP", flush=True)
        time.sleep(120)
    return done

create.stream_table = paused
from ops.cli.main import main
main(sys.argv[1:])
"""


@contextmanager
def process(cli_env: dict[str, str], code: str | None, *args: str) -> Iterator[tuple]:
    """A scheduler process (optionally running `code` in place of the plain CLI) and the
    lines of its stdout as they come."""
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "ops"]
    child = subprocess.Popen([*command, *args], env=cli_env, cwd=PROJECT_ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        yield child, lines
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(WAIT)
        reader.join(WAIT)


def wait_for_line(lines: list[str], text: str, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while not any(text in line for line in lines):
        assert child.poll() is None, (lines, child.stderr.read())
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)


def test_sigterm_mid_backup_aborts_it_leaves_no_backup_and_exits_0(
        cli_env: dict[str, str], sample: dict, backup_dir: Path):
    with process(cli_env, PAUSE_MID_BACKUP, "schedule", "--every", "1h") as (child, lines):
        wait_for_line(lines, "MID-BACKUP", child)
        child.send_signal(signal.SIGTERM)
        assert child.wait(WAIT) == 0, child.stderr.read()

    assert "🛑 Stopped during a cycle: it was aborted" in "".join(lines)
    assert "🛑 Scheduler stopped" in lines[-1]
    assert os.listdir(backup_dir) == []  # no backup-*, and no temp file either


def test_sigterm_between_cycles_stops_at_once_with_status_0(
        cli_env: dict[str, str], settings: Settings, sample: dict):
    from ops.backup.create import backup

    backup(settings)  # this hour's backup exists: nothing to catch up on
    with process(cli_env, None, "schedule", "--every", "1h") as (child, lines):
        wait_for_line(lines, "⏰ Scheduler: every 1h", child)
        child.send_signal(signal.SIGTERM)
        assert child.wait(WAIT) == 0

    assert len(backup_names(settings)) == 1
    assert lines[-1].startswith("🛑 Scheduler stopped")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_says_the_schedule_and_the_next_run_at_start_not_after_the_first_cycle(
        cli_env: dict[str, str], settings: Settings, sample: dict, log_format: str):
    from ops.backup.create import backup

    backup(settings)  # nothing missed: the first cycle is at the next midnight UTC
    with process(cli_env, None, "schedule", "--every", "1d", "--log-format",
                 log_format) as (child, lines):
        wait_for_line(lines, "next_run" if log_format == "json" else "Next backup", child)
        child.send_signal(signal.SIGTERM)
        assert child.wait(WAIT) == 0

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    if log_format == "json":
        start = json.loads(lines[0])
        assert start["event"] == "start" and start["schedule"] == "every 1d"
        assert start["next_run"].startswith(f"{tomorrow}T00:00:00")
    else:
        assert lines[0].startswith("⏰ Scheduler: every 1d")
        assert lines[1] == f"⏭️  Next backup: {tomorrow} 00:00:00 UTC\n"
    assert len(backup_names(settings)) == 1


def test_once_exits_with_the_cycle_status_and_logs_one_json_line(
        run_cli, sample: dict, backup_dir: Path, tmp_path: Path):
    metrics_dir = tmp_path / "textfiles"
    metrics_dir.mkdir()
    good = run_cli("schedule", "--once", "--log-format", "json", "--compress",
                   "--metrics-file", str(metrics_dir / "backup.prom"))
    bad = run_cli("schedule", "--once", "--log-format", "json",
                  env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})

    assert good.returncode == 0, good.stderr
    (line,) = good.stdout.splitlines()
    logged = json.loads(line)
    assert logged["result"] == "success" and logged["backup"].endswith(".json.zst")
    assert logged["verified"] == VERIFIED and logged["slot"] is None
    textfile = parse_metrics((metrics_dir / "backup.prom").read_text())
    assert textfile['tasklets_backup_runs_total{result="success"}'] == 1
    assert [p.name for p in metrics_dir.iterdir()] == ["backup.prom"]  # written by a rename

    assert bad.returncode == 1
    (line,) = bad.stdout.splitlines()
    assert json.loads(line)["stage"] == "lock"
    assert "cannot connect to database 127.0.0.1:1/x" in json.loads(line)["error"]


def test_text_logs_are_emoji_lines(run_cli, sample: dict):
    done = run_cli("schedule", "--once", "--keep-last", "3")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("⏰ Scheduler: one cycle now; backups to ")
    assert "retention: last 3" in lines[0]
    assert any(line.startswith("🔍 Verified: structure, row counts and sha256") for line in lines)
    assert any(line.startswith("🧹 Retention (last 3): kept 1, deleted 0") for line in lines)
    assert lines[-1].startswith("✅ Cycle done: backup-")


@pytest.mark.parametrize(("args", "env", "message"), [
    ((), {}, "no schedule: say when backups run"),
    (("--cron", "every day"), {}, "--cron='every day' is not a schedule"),
    (("--every", "6x"), {}, "cannot read age '6x'"),
    (("--every", "1h", "--cron", "0 3 * * *"), {}, "--every and --cron do not mix"),
    ((), {"BACKUP_SCHEDULE": "3am"}, "BACKUP_SCHEDULE='3am' is not a schedule"),
    (("--once", "--notify-url", "ftp://x"), {}, "must be an http(s):// URL"),
])
def test_bad_schedules_are_one_line_and_exit_2(run_cli, args, env, message):
    done = run_cli("schedule", *args, env=env)

    assert done.returncode == 2, done.stdout
    assert message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr


def test_backup_schedule_takes_either_form_and_finds_the_moments_around_now():
    from datetime import UTC, datetime

    every, cron = parse_schedule(setting="6h"), parse_schedule(setting="0 3 * * *")
    assert (str(every), str(cron)) == ("every 6h", 'cron "0 3 * * *" (UTC)')
    with pytest.raises(OpsError):
        parse_schedule(setting="0 3 * *")
    at = datetime(2026, 11, 26, 2, 59, 59, 500000, tzinfo=UTC)
    assert cron.latest(at) == datetime(2026, 11, 25, 3, tzinfo=UTC)  # never one to come
    assert cron.latest(at.replace(hour=3, second=0, microsecond=1)) == \
        datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert cron.next_after(at) == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert every.latest(at) == datetime(2026, 11, 26, 0, tzinfo=UTC)
    assert every.next_after(at) == datetime(2026, 11, 26, 6, tzinfo=UTC)
    assert every.interval_at(at) == cron.interval_at(at) / 4


@pytest.mark.parametrize(("url", "ping"), [
    ("https://hc-ping.com/0b8f2c7e-5bfc-4b43-9d4b-7f0ad9f2e3a1", True),
    ("https://hc.example.com/ping/0b8f2c7e-5bfc-4b43-9d4b-7f0ad9f2e3a1", True),
    ("https://hc.example.com/ping/key/nightly-backup", True),
    ("https://hooks.example.com/ping", False),
    ("https://hooks.example.com/services/T0/B0/x", False),
])
def test_ping_urls_are_told_from_webhooks_by_the_url(settings: Settings, url: str, ping: bool):
    assert Notifier(url, Redactor(settings)).ping_style is ping


# ---------------------------------------------------------------- notifications


SECRET_PASSWORD = "Pw-only-the-database-knows-7731"
SECRET_KEY = "aws-secret-that-must-stay-home-4412"


def with_password(url: str) -> str:
    """The same URL with a password (the test server trusts, so any password connects)."""
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{SECRET_PASSWORD}@{host}"


@pytest.mark.security
def test_notifications_and_logs_never_carry_credentials(run_cli, sample: dict, db_url: str):
    env = {"DATABASE_URL": with_password(db_url), "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "POSTGRES_PASSWORD": SECRET_PASSWORD}
    dead = {**env, "DATABASE_URL": f"postgresql://postgres:{SECRET_PASSWORD}@127.0.0.1:1/x"}
    with receiver() as hook:
        runs = [run_cli("schedule", "--once", *form, "--notify-url", hook.url, env=variables)
                for variables in (env, dead) for form in ((), ("--log-format", "json"))]
        sent = b"".join(r.body for r in hook.requests).decode()

    assert [r.returncode for r in runs] == [0, 0, 1, 1]
    assert hook.events() == ["start", "success"] * 2 + ["failure"] * 2
    for text in [sent] + [r.stdout + r.stderr for r in runs]:
        assert SECRET_PASSWORD not in text and SECRET_KEY not in text
        assert "postgresql://" not in text
    assert "cannot connect to database 127.0.0.1:1/x" in sent


@pytest.mark.security
def test_the_redactor_blanks_known_secrets_and_url_passwords(settings: Settings,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    redact = Redactor(settings.with_url(f"postgresql://u:{SECRET_PASSWORD}@h/db"))

    assert redact(f"failed: {SECRET_PASSWORD} and {SECRET_KEY} at s3://k:v@host") == \
        "failed: *** and *** at s3://***@host"


def test_healthchecks_ping_urls_get_start_fail_and_the_bare_url(run_cli, sample: dict):
    with receiver() as hook:
        ping = f"{hook.url}/ping/0b8f2c7e-5bfc-4b43-9d4b-7f0ad9f2e3a1"
        run_cli("schedule", "--once", "--notify-url", ping)
        run_cli("schedule", "--once", "--notify-url", ping,
                env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})
        paths = [r.path for r in hook.requests]

    uuid = "/ping/0b8f2c7e-5bfc-4b43-9d4b-7f0ad9f2e3a1"
    assert paths == [f"{uuid}/start", uuid, f"{uuid}/fail"]


def test_a_failing_notification_is_logged_and_never_fails_the_backup(
        run_cli, sample: dict, backup_dir: Path):
    with receiver() as hook:
        hook.status = 500
        broken = run_cli("schedule", "--once", "--notify-url", hook.url)
    unreachable = run_cli("schedule", "--once", "--notify-url", "http://127.0.0.1:1/hook")

    assert broken.returncode == 0 and unreachable.returncode == 0
    assert "⚠️  notification start to http://127.0.0.1 failed: HTTP 500" in broken.stderr
    assert "⚠️  notification success to http://127.0.0.1 failed: ConnectError" in \
        unreachable.stderr
    assert len(Archive.at(backup_dir).backups()) == 2


# ---------------------------------------------------------------- one-shot metrics


def test_backup_pushes_its_metrics_to_a_pushgateway_and_writes_a_textfile(
        run_cli, sample: dict, tmp_path: Path):
    textfile = tmp_path / "metrics" / "tasklets.prom"
    textfile.parent.mkdir()
    with receiver() as gateway:
        made = run_cli("backup", "--json", "--pushgateway", gateway.url,
                       "--metrics-file", str(textfile))
        failed = run_cli("backup", "--pushgateway", gateway.url, "--metrics-file",
                         str(textfile), env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})
        pushes = list(gateway.requests)

    assert made.returncode == 0 and failed.returncode == 1
    assert [r.method for r in pushes] == ["PUT", "PUT"]
    assert pushes[0].path.startswith("/metrics/job/tasklets_backup/instance@base64/")
    first = parse_metrics(pushes[0].body.decode())
    name = json.loads(made.stdout)["name"]
    assert first["tasklets_backup_last_success_timestamp_seconds"] == \
        parse_backup_name(name)[0].timestamp()
    assert first['tasklets_backup_runs_total{result="success"}'] == 1
    second = parse_metrics(pushes[1].body.decode())
    assert second["tasklets_backup_failures_total"] == 1
    # a failed run still reports the newest good backup, read from the store
    assert second["tasklets_backup_last_success_timestamp_seconds"] == \
        first["tasklets_backup_last_success_timestamp_seconds"]
    assert parse_metrics(textfile.read_text()) == second  # the same run wrote both
