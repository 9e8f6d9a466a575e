"""`schedule`: run backup cycles (ops.schedule.cycle) on a schedule until stopped, or once.

- At start, a cycle runs at once when the last scheduled moment has no backup yet (a
  scheduler that was down over its moment catches up, like anacron); then one per moment.
- A failed cycle never stops the scheduler. After one failure the next moment retries; after
  k in a row, the next try waits 2^(k-1) - 1 intervals more (at most BACKOFF_CAP, and never
  less than the next moment), so a dead database is not hammered every second.
- SIGTERM (`Stopper`): between cycles, stop at once; during one, abort it (the backup being
  written is discarded: no `backup-*` appears) and stop. Either way the exit status is 0.
- A restore drill runs in the cycle after `drill_every` has passed since the last one that
  passed (the store remembers drills, so a restart does not reset the clock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ops.backup.archive import Archive
from ops.backup.files import utc_now
from ops.backup.verdicts import DRILLED
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter
from ops.core.signals import on_sigterm
from ops.schedule.cycle import FAILURE, CycleOptions, CycleResult, run_cycle, taken_since
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Notifier, Redactor
from ops.schedule.timing import Schedule

BACKOFF_CAP = timedelta(hours=1)


class StopRequested(KeyboardInterrupt):
    """Raised into a running cycle by SIGTERM. A KeyboardInterrupt, so every layer treats it
    like Ctrl-C: writers discard, psycopg cancels the running query, nothing catches it as
    an ordinary error."""


class Stopper:
    """How the scheduler is told to stop: `request()` (what SIGTERM calls)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.in_cycle = False
        self.aborted = False

    def request(self) -> None:
        self.event.set()
        if self.in_cycle and not self.aborted:
            self.aborted = True
            raise StopRequested()

    def on_sigterm(self) -> contextlib.AbstractContextManager[None]:
        """Call request() on SIGTERM while the block runs (main thread only)."""
        return on_sigterm(lambda *_: self.request())


@dataclass
class SchedulerOptions:
    cycle: CycleOptions
    schedule: Schedule | None = None  # None: one cycle (--once)
    drill_every: timedelta | None = None


def run_scheduler(settings: Settings, options: SchedulerOptions, *, metrics: BackupMetrics,
                  notifier: Notifier | None, on_cycle: Callable[[CycleResult], None],
                  stopper: Stopper | None = None, archive: Archive | None = None,
                  on_start: Callable[[datetime], None] | None = None,
                  report: Reporter = SILENT) -> int:
    """Run until stopped (or one cycle with no schedule); returns the exit status: 0, or 1
    when the single cycle of a one-shot run failed. The archive is opened once, for every
    cycle."""
    stopper = stopper or Stopper()
    redact = Redactor(settings)
    archive = archive or Archive.from_settings(settings)
    last_drill = _seed(archive, metrics, report)
    schedule = options.schedule
    if schedule is None:
        result = _cycle(settings, archive, options, metrics, notifier, redact, None,
                        last_drill, stopper, report)
        if result is None:
            return 0
        on_cycle(result)
        return 1 if result.result == FAILURE else 0
    now = utc_now()
    moment = schedule.latest(now)
    if not _missed(archive, moment):
        moment = schedule.next_after(now)
    if on_start is not None:  # the log says when the first cycle comes, not only after it
        on_start(max(moment, now))
    failures = 0
    not_before = now
    while True:
        if stopper.event.wait(max(0.0, (max(moment, not_before) - utc_now()).total_seconds())):
            break
        slot = schedule.latest(utc_now())
        result = _cycle(settings, archive, options, metrics, notifier, redact, slot,
                        last_drill, stopper, report)
        if result is None:
            break
        if result.drill and result.drill["ok"]:
            last_drill = datetime.fromisoformat(result.finished)
        now = utc_now()
        failures = failures + 1 if result.result == FAILURE else 0
        backoff = min(schedule.interval_at(now) * (2 ** max(failures - 1, 0) - 1), BACKOFF_CAP)
        not_before = now + backoff
        moment = schedule.next_after(max(now, not_before) - timedelta(microseconds=1))
        result.next_run = moment.isoformat()
        on_cycle(result)
        if backoff:
            report.line(f"⏳ {failures} failed cycles in a row: backing off; next try at "
                        f"{moment:%Y-%m-%d %H:%M:%S} UTC")
    report.line("🛑 Scheduler stopped")
    return 0


def _cycle(settings: Settings, archive: Archive, options: SchedulerOptions,
           metrics: BackupMetrics,
           notifier: Notifier | None, redact: Redactor, slot: datetime | None,
           last_drill: datetime | None, stopper: Stopper,
           report: Reporter) -> CycleResult | None:
    """One cycle, or None when SIGTERM aborted it."""
    due = options.drill_every is not None and (
        last_drill is None or utc_now() - last_drill >= options.drill_every)
    cycle = replace(options.cycle, drill=due)
    stopper.in_cycle = True
    try:
        if stopper.event.is_set():
            return None
        return run_cycle(settings, cycle, metrics=metrics, notifier=notifier, redact=redact,
                         slot=slot, archive=archive, report=report)
    except StopRequested:
        report.line("🛑 Stopped during a cycle: it was aborted, and any backup it was "
                    "writing discarded")
        return None
    finally:
        stopper.in_cycle = False


def _seed(archive: Archive, metrics: BackupMetrics, report: Reporter) -> datetime | None:
    """Start the metrics from the store; returns when the last drill passed (None: never)."""
    try:
        metrics.seed(archive)
        drilled = archive.verdicts().last(DRILLED)
    except OpsError as exc:
        report.line(f"⚠️  Could not read {archive} yet: {exc.message}")
        return None
    return drilled[1] if drilled else None


def _missed(archive: Archive, moment: datetime) -> bool:
    """Whether the scheduled moment has no backup taken at or after it."""
    try:
        return taken_since(archive, moment) is None
    except OpsError:
        return True
