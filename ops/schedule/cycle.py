"""One cycle of the scheduler: back up → verify the new file → retention (only after a verified
backup) → (a restore drill, when one is due) → metrics → notify. Failures are the cycle's
result, never an exception: the scheduler lives on and tries again at the next tick.

The backup lock (ops.backup.lock) is held from before the backup until retention is done, so
a second scheduler, or a manual `backup`, never overlaps with it. A cycle run for a scheduled
moment first looks whether a backup was taken since that moment (by another scheduler that
woke for the same moment) and, if so, skips: one backup per tick, however many schedulers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from ops.backup.archive import Archive
from ops.backup.create import BackupResult, backup
from ops.backup.encryption import identities_for
from ops.backup.files import BackupRef, utc_now
from ops.backup.lock import BackupRunning, backup_lock
from ops.backup.prune import prune
from ops.backup.retention import RetentionPolicy
from ops.backup.verdicts import DRILLED, VERIFIED
from ops.backup.verify import verify_and_record
from ops.core.config import Settings
from ops.core.db import first_line
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter, human_size
from ops.restore.drill import restore_drill
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Notifier, Redactor

SUCCESS, FAILURE, SKIPPED = "success", "failure", "skipped"


@dataclass
class CycleOptions:
    compression: str | None = None  # "zstd", "gzip"; None: plain JSON
    policy: RetentionPolicy | None = None
    overlap: str = "skip"  # another backup is running: "skip" this cycle, or "wait" for it
    identity: str | None = None  # decrypts encrypted backups to verify and drill them
    drill: bool = False  # restore the new backup into a scratch database


@dataclass
class CycleResult:
    result: str  # success | failure | skipped
    started: str
    slot: str | None = None  # the scheduled moment this cycle ran for
    finished: str = ""
    duration_seconds: float = 0.0
    backup: str | None = None  # the new backup's name
    location: str | None = None  # where it is (a path or a bucket URL; never credentials)
    size_bytes: int | None = None
    rows: int | None = None
    verified: str | None = None  # verified, or why not
    pruned: list[str] = field(default_factory=list)
    kept: int | None = None
    drill: dict[str, Any] | None = None
    stage: str | None = None  # where a failed cycle failed: lock, backup, verify, ...
    error: str | None = None  # one line, secrets replaced by ***
    note: str | None = None  # why a cycle was skipped
    notify_errors: list[str] = field(default_factory=list)
    next_run: str | None = None


def run_cycle(settings: Settings, options: CycleOptions, *, metrics: BackupMetrics,
              notifier: Notifier | None, redact: Redactor, slot: datetime | None = None,
              archive: Archive | None = None, report: Reporter = SILENT) -> CycleResult:
    """Run one cycle; every outcome is in the result (and the metrics, and notifications).
    `archive` is the scheduler's, opened once for all its cycles."""
    clock = time.monotonic()
    result = CycleResult(result=FAILURE, started=utc_now().isoformat(),
                         slot=slot.isoformat() if slot else None)
    stage = "lock"
    try:
        archive = archive or Archive.from_settings(settings)
        with backup_lock(settings, wait=options.overlap == "wait", report=report):
            taken = taken_since(archive, slot) if slot is not None else None
            if taken is not None:
                result.result = SKIPPED
                result.note = f"{taken} was already taken for {slot:%H:%M:%S} by another run"
                report.line(f"⏭️  Skipped: {result.note}")
                return _finish(result, clock, metrics, notifier)
            _notify(notifier, "start", result)
            stage = "backup"
            report.line("🔄 Backing up...")
            made = backup(settings, archive=archive, compression=options.compression,
                          lock=False)
            seconds = time.monotonic() - clock
            _describe(result, made, seconds, report)
            stage = "verify"
            ref = made.ref
            result.verified = _verify(settings, archive, ref, options, report)
            metrics.backup_succeeded(made, seconds)
            if options.policy and result.verified != VERIFIED:
                report.line("🧹 Retention skipped: it runs only after a verified backup")
            elif options.policy:
                stage = "retention"
                pruned = prune(archive, policy=options.policy, yes=True)
                result.pruned, result.kept = pruned.delete, len(pruned.keep)
                report.line(f"🧹 Retention ({options.policy}): kept {result.kept}, deleted "
                            f"{len(result.pruned)}")
        if options.drill:
            stage = "drill"
            _drill(settings, archive, ref, options, result, metrics, report)
        result.result = SUCCESS
    except BackupRunning as exc:
        result.result = SKIPPED
        result.note = exc.message
        report.line(f"⏭️  Skipped: {exc.message}")
    except OpsError as exc:
        _failed(result, stage, exc.message, redact, report)
    except psycopg.Error as exc:
        _failed(result, stage, f"database error: {first_line(exc)}", redact, report)
    except Exception as exc:  # a bug: the scheduler must outlive it all the same
        _failed(result, stage, f"internal error: {type(exc).__name__}: {exc}", redact, report)
    return _finish(result, clock, metrics, notifier)


def taken_since(archive: Archive, moment: datetime) -> str | None:
    """The name of a backup taken at or after `moment`, if there is one."""
    return next((b.name for b in archive.backups(include_safety=False)
                 if b.timestamp >= moment), None)


def _describe(result: CycleResult, made: BackupResult, seconds: float,
              report: Reporter) -> None:
    result.backup, result.location = made.name, made.location
    result.size_bytes, result.rows = made.size_bytes, made.total_rows
    report.line(f"✅ {made.name}: {human_size(made.size_bytes)}, {made.total_rows} rows "
                f"({seconds:.1f}s)")


def _verify(settings: Settings, archive: Archive, ref: BackupRef, options: CycleOptions,
            report: Reporter) -> str:
    """Stream the new backup and check it (encrypted, without an identity: its stored bytes
    against its sidecar); record the verdict beside it. A failure raises."""
    identities = identities_for(settings, options.identity)
    try:
        checked = verify_and_record(archive, ref, identities)
    except OpsError as exc:  # nothing to check it with
        report.line(f"🔒 Not verified: {exc.message}")
        return f"not verified ({exc.message})"
    if not checked.ok:
        raise OpsError(f"the new backup {ref.name} failed verification: {checked.problem}")
    report.line(f"🔍 Verified: {checked.checked}")
    return VERIFIED


def _drill(settings: Settings, archive: Archive, ref: BackupRef, options: CycleOptions,
           result: CycleResult, metrics: BackupMetrics, report: Reporter) -> None:
    drill = restore_drill(settings, ref, archive=archive, identity=options.identity)
    finished = datetime.fromisoformat(drill.finished)
    metrics.drill(drill.ok, finished)
    result.drill = {"ok": drill.ok, "seconds": drill.seconds, "scratch": drill.scratch,
                    "problem": drill.problem}
    if not drill.ok:
        raise OpsError(f"restore drill of {ref.name} failed: {drill.problem}")
    archive.record_verdict(ref, DRILLED, seconds=drill.seconds, checked=drill.checked)
    report.line(f"🧪 Restore drill passed ({drill.seconds:.1f}s)")


def _failed(result: CycleResult, stage: str, message: str, redact: Redactor,
            report: Reporter) -> None:
    result.stage = stage
    result.error = redact(message)
    report.line(f"❌ Cycle failed at {stage}: {result.error}")


def _notify(notifier: Notifier | None, event: str, result: CycleResult) -> None:
    if notifier is None:
        return
    details = {"backup": result.backup, "location": result.location,
               "size_bytes": result.size_bytes, "rows": result.rows,
               "duration_seconds": result.duration_seconds or None,
               "stage": result.stage, "error": result.error, "started": result.started}
    problem = notifier.send(event, details)
    if problem is not None:
        result.notify_errors.append(problem)


def _finish(result: CycleResult, clock: float, metrics: BackupMetrics,
            notifier: Notifier | None) -> CycleResult:
    result.finished = utc_now().isoformat()
    result.duration_seconds = round(time.monotonic() - clock, 3)
    metrics.cycle(result.result)
    if result.result != SKIPPED:
        _notify(notifier, result.result, result)
    return result
