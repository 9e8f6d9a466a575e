"""`prune`: delete old backups by count and/or age, or by a retention policy; never the newest
good one.

A file is deleted only when every rule given allows it (outside the `keep` newest AND older
than `older_than`), so adding a rule can only keep more. A retention `policy` (keep the last
N, one a day, a week, a month: ops.backup.retention) replaces those two rules. Backups and
pre-restore safety backups are counted separately; files that are not backups are never
touched, except a deleted backup's verdicts (ops.backup.verdicts) and the hidden temp files
of runs killed more than a day ago (no run takes that long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ops.backup.files import BackupFile, Location, as_store, list_backups, looks_complete, utc_now
from ops.backup.retention import NEWEST_GOOD, RetentionPolicy, plan_retention
from ops.backup.storage.interface import Store
from ops.backup.verdicts import forget_verdicts, newest_good_backup, read_verdicts
from ops.core.errors import UsageError
from ops.core.output import SILENT, Reporter, human_size, suggest

STALE_TEMP_AGE = timedelta(days=1)
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass
class PruneResult:
    backup_dir: str
    dry_run: bool
    delete: list[str] = field(default_factory=list)  # names, newest first
    keep: list[str] = field(default_factory=list)
    protected: str | None = None  # the newest good backup, kept although the rules matched it
    freed_bytes: int = 0
    stale_temp_files: list[str] = field(default_factory=list)  # killed runs' .partial files
    policy: str | None = None  # the retention policy applied, when one was
    reasons: dict[str, list[str]] = field(default_factory=dict)  # policy: kept name -> why


def parse_age(text: str) -> timedelta:
    """`14d`, `12h`, `2w`, `30m`, `90s` -> timedelta."""
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"cannot read age {text!r}",
                       hint="Use a number and a unit: 90s, 30m, 12h, 14d or 2w.")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def plan_prune(backups: list[BackupFile], *, keep: int | None, older_than: timedelta | None,
               now: datetime) -> tuple[list[BackupFile], BackupFile | None]:
    """(files to delete, the newest good backup the rules wanted but may not delete)."""
    if keep is None and older_than is None:
        raise UsageError("say what to prune: --keep N and/or --older-than AGE",
                       hint=f"e.g. {suggest('prune --keep 10')} or "
                       f"{suggest('prune --older-than 14d')}.")
    if keep is not None and keep < 0:
        raise UsageError("--keep must be 0 or more")
    doomed: list[BackupFile] = []
    for safety in (False, True):
        group = [b for b in backups if b.safety == safety]  # already newest first
        for index, found in enumerate(group):
            beyond_keep = keep is None or index >= keep
            old_enough = older_than is None or found.timestamp < now - older_than
            if beyond_keep and old_enough:
                doomed.append(found)
    newest_good = next((b for b in backups
                        if not b.safety and looks_complete(b.ref, size=b.size)), None)
    protected = newest_good if newest_good in doomed else None
    doomed = [b for b in doomed if b != newest_good]
    doomed.sort(key=lambda b: (b.timestamp, b.name), reverse=True)
    return doomed, protected


def prune(location: Location, *, keep: int | None = None,
          older_than: timedelta | None = None, policy: RetentionPolicy | None = None,
          yes: bool = False, report: Reporter = SILENT,
          now: datetime | None = None) -> PruneResult:
    """Show (and with yes=True, delete) the backups the rules (or the policy) select, in any
    store; a deleted backup's verdicts go with it."""
    store = as_store(location)
    backup_dir = str(store)
    backups = list_backups(store)
    verdicts = read_verdicts(store)
    reasons: dict[str, list[str]] = {}
    if policy is not None:
        if keep is not None or older_than is not None:
            raise UsageError("a retention policy (--keep-last/-daily/-weekly/-monthly) and "
                             "--keep/--older-than do not mix", hint="Use one or the other.")
        newest = newest_good_backup(backups, verdicts)
        plan = plan_retention(backups, policy, newest_good=newest.name if newest else None,
                              bad={b.name for b in backups if verdicts.is_bad(b.name)})
        doomed, reasons = plan.delete, plan.keep
        protected = newest if newest and reasons.get(newest.name) == [NEWEST_GOOD] else None
    else:
        doomed, protected = plan_prune(backups, keep=keep, older_than=older_than,
                                       now=now or utc_now())
    result = PruneResult(backup_dir=backup_dir, dry_run=not yes,
                         delete=[b.name for b in doomed],
                         keep=[b.name for b in backups if b not in doomed],
                         protected=protected.name if protected else None,
                         policy=str(policy) if policy is not None else None, reasons=reasons)
    report.line(f"🧹 {len(backups)} backup(s) in {backup_dir}"
                + (f", policy {policy}" if policy is not None else "")
                + f": keeping {len(result.keep)}, "
                f"{'deleting' if yes else 'would delete'} {len(doomed)}")
    if protected:
        report.line(f"🛡️  Keeping {protected.name}: it is the newest good backup")
    for found in backups:
        if found.name in reasons:
            report.line(f"📌 {found.name}: {', '.join(reasons[found.name])}")
    for found in doomed:
        report.line(f"🗑️  {found.name} ({human_size(found.size)})")
        if yes:
            found.ref.delete()
            forget_verdicts(store, found, verdicts)
        result.freed_bytes += found.size
    _remove_stale_uploads(store, result, yes, now or utc_now(), report)
    if not doomed and not result.stale_temp_files:
        report.line("✅ Nothing to prune.")
    elif yes:
        report.line(f"✅ Deleted {len(doomed)} backup(s), {human_size(result.freed_bytes)} freed")
    else:
        report.line(f"ℹ️  Dry run: nothing deleted. Re-run with --yes to delete "
                    f"{len(doomed)} file(s) ({human_size(result.freed_bytes)}).")
    return result


def _remove_stale_uploads(store: Store, result: PruneResult, yes: bool, now: datetime,
                          report: Reporter) -> None:
    """Uploads left by runs killed (kill -9, power loss, a lost network) more than a day ago:
    temp files in a directory, unfinished multipart uploads in a bucket."""
    stale = [u for u in store.incomplete_uploads() if u.started <= now - STALE_TEMP_AGE]
    for upload in stale:
        if yes:
            store.abort_upload(upload)
        result.stale_temp_files.append(upload.name)
    if stale:
        report.line(f"🧹 {'Removed' if yes else 'Would remove'} {len(stale)} unfinished "
                    "upload(s) of runs killed over a day ago")
