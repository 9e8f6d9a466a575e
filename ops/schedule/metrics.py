"""Prometheus metrics of backups and restore drills: served by the scheduler, or pushed (to a
Pushgateway) or written (a node-exporter textfile) by one-shot runs.

Each run starts from what the store holds - the newest good backup's time, size and rows,
the last successful drill - so a restarted scheduler or a one-shot run never reports "no
backup since 1970". The registry is private to each BackupMetrics: two schedulers in one
process (the tests) do not share counters. Labels never carry names, paths or URLs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)

from ops.backup.archive import Archive
from ops.backup.create import BackupResult
from ops.backup.files import parse_backup_name, utc_now
from ops.backup.verdicts import DRILLED
from ops.core.config import Settings
from ops.core.db import target_description
from ops.core.errors import OpsError
from ops.schedule.notify import Redactor

PUSH_TIMEOUT_SECONDS = 10
JOB = "tasklets_backup"
RESULTS = ("success", "failure", "skipped")


@dataclass
class MetricsServer:
    server: WSGIServer
    host: str
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BackupMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        gauge = self._gauge
        self.last_success = gauge("tasklets_backup_last_success_timestamp_seconds",
                                  "When the newest good backup was taken (Unix time)")
        self.last_duration = gauge("tasklets_backup_last_duration_seconds",
                                   "How long the last successful backup took")
        self.last_size = gauge("tasklets_backup_last_size_bytes",
                               "Size of the newest good backup")
        self.last_rows = gauge("tasklets_backup_last_rows", "Rows in the newest good backup")
        self.drill_last_success = gauge(
            "tasklets_restore_drill_last_success_timestamp_seconds",
            "When a restore drill last passed (Unix time)")
        self.runs = Counter("tasklets_backup_runs", "Backup cycles by result",
                            ["result"], registry=self.registry)
        self.failures = Counter("tasklets_backup_failures", "Backup cycles that failed",
                                registry=self.registry)
        self.drills = Counter("tasklets_restore_drill_runs", "Restore drills by result",
                              ["result"], registry=self.registry)
        for result in RESULTS:
            self.runs.labels(result=result)
        for result in RESULTS[:2]:
            self.drills.labels(result=result)

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=self.registry)

    def seed(self, archive: Archive) -> None:
        """Start from what the archive holds: its newest good full backup (one listing, and a
        meta or sidecar read per backup until it is found)."""
        listing = archive.listing()
        newest = archive.newest_good(listing)
        if newest is not None:
            self.last_success.set(newest.timestamp.timestamp())
            self.last_size.set(newest.size)
            rows = archive.facts(newest, listing).rows
            if rows is not None:
                self.last_rows.set(rows)
        drilled = listing.verdicts.last(DRILLED)
        if drilled is not None:
            self.drill_last_success.set(drilled[1].timestamp())

    def backup_succeeded(self, made: BackupResult, seconds: float) -> None:
        taken = parse_backup_name(made.name)  # the moment in its name, as seed() reads it
        self.last_success.set((taken[0] if taken else utc_now()).timestamp())
        self.last_duration.set(seconds)
        self.last_size.set(made.size_bytes)
        self.last_rows.set(made.total_rows)

    def cycle(self, result: str) -> None:
        self.runs.labels(result=result).inc()
        if result == "failure":
            self.failures.inc()

    def drill(self, ok: bool, finished: datetime) -> None:
        self.drills.labels(result="success" if ok else "failure").inc()
        if ok:
            self.drill_last_success.set(finished.timestamp())

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve /metrics on host:port in a background thread."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, host, server.server_port)

    def push(self, gateway: str, grouping: dict[str, str]) -> None:
        """Replace this job's metrics in the Pushgateway at `gateway`."""
        push_to_gateway(gateway, job=JOB, registry=self.registry, grouping_key=grouping,
                        timeout=PUSH_TIMEOUT_SECONDS)

    def publish(self, settings: Settings, *, pushgateway: str | None = None,
                textfile: str | None = None) -> list[str]:
        """Push and/or write the metrics; returns what failed, one line each (a failure
        never fails the run that measured them)."""
        problems = []
        if pushgateway:
            try:
                self.push(pushgateway, {"instance": target_description(settings.database_url)})
            except Exception as exc:  # urllib's errors and more
                problems.append(f"pushing the metrics to the Pushgateway failed: "
                                f"{type(exc).__name__}: {exc}")
        if textfile:
            try:
                self.write_textfile(textfile)
            except OSError as exc:
                problems.append(f"writing the metrics file {textfile} failed: {exc}")
        redact = Redactor(settings, pushgateway or "")
        return [redact(problem) for problem in problems]

    def write_textfile(self, path: str | os.PathLike[str]) -> None:
        """Write the node-exporter textfile atomically (a temp file beside it, renamed)."""
        target = Path(path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"{target.parent} is not a directory")
        write_to_textfile(str(target), self.registry)


@contextmanager
def one_shot_metrics(settings: Settings, archive: Archive, *, pushgateway: str | None,
                     textfile: str | None, warn: Callable[[str], None]
                     ) -> Iterator[Callable[[BackupResult], None]]:
    """For a one-shot `backup`: yields what records its result; on the way out (failed or
    not) pushes and/or writes the metrics, when asked, and warns of what failed."""
    if not pushgateway and not textfile:
        yield lambda made: None
        return
    metrics = BackupMetrics()
    with suppress(OpsError):  # an unreachable store is the backup's to report, not this
        metrics.seed(archive)
    started = time.monotonic()
    try:
        yield lambda made: metrics.backup_succeeded(made, time.monotonic() - started)
        metrics.cycle("success")
    except OpsError:
        metrics.cycle("failure")
        raise
    finally:
        for problem in metrics.publish(settings, pushgateway=pushgateway, textfile=textfile):
            warn(f"⚠️  {problem}")
