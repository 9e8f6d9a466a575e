"""The scheduler: `schedule` (long-running, or --once)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from ops.cli.app import (
    CompressionOption,
    CompressOption,
    KeepDaily,
    KeepLast,
    KeepMonthly,
    KeepWeekly,
    MetricsFileOption,
    PushgatewayOption,
    app,
    compression_choice,
    reporter,
    retention_policy,
    settings,
)
from ops.core.output import Reporter, human_size, print_json

if TYPE_CHECKING:
    from datetime import datetime

    from ops.core.config import Settings
    from ops.schedule.cycle import CycleResult
    from ops.schedule.metrics import BackupMetrics

class Overlap(StrEnum):
    skip = "skip"
    wait = "wait"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def publish_metrics(cfg: Settings, metrics: BackupMetrics, pushgateway: str | None,
                    metrics_file: str | None, out: Reporter) -> None:
    for problem in metrics.publish(cfg, pushgateway=pushgateway, textfile=metrics_file):
        out.warn(f"⚠️  {problem}")


@app.command()
def schedule(
    every: Annotated[str | None, typer.Option(
        "--every", metavar="INTERVAL", help="Back up every INTERVAL (90s, 30m, 6h, 1d), counted "
        "from midnight UTC. Default: BACKUP_SCHEDULE.")] = None,
    cron: Annotated[str | None, typer.Option(
        "--cron", metavar="EXPR", help="Back up on a cron expression, in UTC (\"0 3 * * *\"). "
        "Default: BACKUP_SCHEDULE.")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Run one cycle now and exit with its status (Kubernetes CronJobs, "
        "cron, CI).")] = False,
    compress: CompressOption = None,
    compression: CompressionOption = None,
    keep_last: KeepLast = None,
    keep_daily: KeepDaily = None,
    keep_weekly: KeepWeekly = None,
    keep_monthly: KeepMonthly = None,
    overlap: Annotated[Overlap, typer.Option(
        "--overlap", help="When another backup of the database is running: skip this cycle, "
        "or wait for it.")] = Overlap.skip,
    drill_every: Annotated[str | None, typer.Option(
        "--drill-every", metavar="AGE", help="Restore the new backup into a scratch database "
        "when the last passing drill is older than AGE (7d). Default: BACKUP_DRILL_EVERY "
        "(none).")] = None,
    identity: Annotated[str | None, typer.Option(
        "--identity", show_default=False, help="The age identity that reads encrypted "
        "backups (to verify and drill them). Default: BACKUP_IDENTITY_FILE.")] = None,
    notify_url: Annotated[str | None, typer.Option(
        "--notify-url", metavar="URL", help="POST a JSON event at each start, success and "
        "failure (a Healthchecks ping URL gets /start, /fail). Default: BACKUP_NOTIFY_URL.")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at "
        "/metrics on this port (9187).")] = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host", help="Address the metrics server listens on (0.0.0.0 in a "
        "container).")] = "127.0.0.1",
    pushgateway: PushgatewayOption = None,
    metrics_file: MetricsFileOption = None,
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", help="text: emoji lines; json: one JSON object per cycle.")]
    = LogFormat.text,
) -> None:
    """Back up on a schedule: backup → verify → retention → metrics → notify, every cycle."""
    from ops.backup.archive import Archive
    from ops.backup.freshness import allowed_age
    from ops.backup.prune import parse_age
    from ops.schedule.cycle import CycleOptions
    from ops.schedule.metrics import BackupMetrics
    from ops.schedule.notify import Notifier, Redactor
    from ops.schedule.scheduler import SchedulerOptions, Stopper, run_scheduler
    from ops.schedule.timing import parse_schedule

    cfg = settings()
    drill_every = drill_every or cfg.backup_drill_every or None
    when = None if once else parse_schedule(every=every, cron=cron, setting=cfg.backup_schedule)
    options = SchedulerOptions(
        cycle=CycleOptions(compression=compression_choice(compress, compression, cfg),
                           policy=retention_policy(cfg, keep_last, keep_daily, keep_weekly,
                                                   keep_monthly),
                           overlap=overlap.value, identity=identity),
        schedule=when, drill_every=parse_age(drill_every) if drill_every else None)
    url = notify_url if notify_url is not None else cfg.backup_notify_url
    notifier = Notifier(url, Redactor(cfg, url)) if url else None
    as_json = log_format is LogFormat.json
    out = reporter(as_json)
    metrics = BackupMetrics(allowed_age(cfg.backup_max_age))
    server = metrics.serve(metrics_host, metrics_port) if metrics_port is not None else None

    def on_cycle(result: CycleResult) -> None:
        if as_json:
            print_json(result, indent=False)
        else:
            _print_cycle(result, out)
        if not once:
            publish_metrics(cfg, metrics, pushgateway, metrics_file, out)

    out.line(f"⏰ Scheduler: {'one cycle now' if once else when}; backups to {cfg.backup_dir}"
             f"; retention: {options.cycle.policy or 'none'}"
             + (f"; restore drills every {drill_every}" if drill_every else "")
             + (f"; metrics on http://{server.host}:{server.port}/metrics" if server else "")
             + (f"; notifications to {notifier.shown}" if notifier else ""))

    def on_start(first: datetime) -> None:
        if as_json:
            print_json({"event": "start", "schedule": str(when),
                        "next_run": first.isoformat()}, indent=False)
        else:
            out.line(f"⏭️  Next backup: {first:%Y-%m-%d %H:%M:%S} UTC")

    stopper = Stopper()
    try:
        with stopper.on_sigterm():
            status = run_scheduler(cfg, options, metrics=metrics, notifier=notifier,
                                   on_cycle=on_cycle, stopper=stopper, on_start=on_start,
                                   archive=Archive.from_settings(cfg), report=out)
    finally:
        if server is not None:
            server.stop()
    if once:
        publish_metrics(cfg, metrics, pushgateway, metrics_file, out)
    raise typer.Exit(status)


def _print_cycle(result: CycleResult, out: Reporter) -> None:
    next_run = f"; next at {result.next_run[:19].replace('T', ' ')} UTC" \
        if result.next_run else ""
    for problem in result.notify_errors:
        out.warn(f"⚠️  {problem}")
    if result.result == "success":
        out.line(f"✅ Cycle done: {result.backup} ({human_size(result.size_bytes or 0)}, "
                 f"{result.rows} rows) in {result.duration_seconds:.1f}s{next_run}")
    elif result.result == "skipped":
        out.line(f"⏭️  Cycle skipped{next_run}")
    else:
        out.line(f"❌ Cycle failed at {result.stage}: {result.error}{next_run}")
