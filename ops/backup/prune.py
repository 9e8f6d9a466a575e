"""`prune`: delete old backups by count and/or age, or by a retention policy; never the newest
good one, nor the newest verified one.

A file is deleted only when every rule given allows it (outside the `keep` newest AND older
than `older_than`), so adding a rule can only keep more. A retention `policy` (keep the last
N, one a day, a week, a month: ops.backup.retention) replaces those two rules.

Only full backups are counted, and pre-restore safety backups on their own, unless `kinds`
names others (each kind is then counted on its own): a tenant's backup or an anonymized
snapshot never stands in for a full one. Only backups known to be complete and not failed
verification count toward what is kept; the others (cut short, encrypted without a sidecar,
`.bad`) are kept while no newer good backup exists. Files that are not backups are never
touched, except a deleted backup's verdicts and sidecar, and the temp files and unfinished
uploads this tool started in runs killed more than a day ago (no run takes that long).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ops.backup.archive import FULL, KINDS, SAFETY, TENANT, Archive, Listing
from ops.backup.files import BackupFile, utc_now
from ops.backup.retention import NEWEST_GOOD, NEWEST_VERIFIED, RetentionPolicy, plan_retention
from ops.backup.segment_files import LOOK_BACK, commit_time, parse_lsn, walk_back
from ops.core.errors import UsageError
from ops.core.output import SILENT, Reporter, human_size, suggest, suggest_flag

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
    kinds: list[str] = field(default_factory=lambda: [FULL, SAFETY])  # the kinds counted
    not_counted: list[str] = field(default_factory=list)  # of other kinds: left alone
    freed_bytes: int = 0
    stale_temp_files: list[str] = field(default_factory=list)  # killed runs' .partial files
    policy: str | None = None  # the retention policy applied, when one was
    reasons: dict[str, list[str]] = field(default_factory=dict)  # policy: kept name -> why
    segments_deleted: list[str] = field(default_factory=list)  # change segments no kept
    # backup needs (all before the oldest kept backup's start of replay)


def parse_age(text: str) -> timedelta:
    """`14d`, `12h`, `2w`, `30m`, `90s` -> timedelta."""
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"cannot read age {text!r}",
                       hint="Use a number and a unit: 90s, 30m, 12h, 14d or 2w.")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def plan_prune(backups: list[BackupFile], *, keep: int | None, older_than: timedelta | None,
               now: datetime, counts: Callable[[BackupFile], bool] = lambda _: True,
               protect: Sequence[BackupFile | None] = ()) -> tuple[list[BackupFile],
                                                                  BackupFile | None]:
    """(files to delete, the newest good backup the rules wanted but may not delete).

    `counts` tells the backups that count toward `keep` (known complete, not bad); one that
    does not is deleted only once `keep` newer ones that count exist. `protect` lists the
    backups never deleted (the newest good one first)."""
    if keep is None and older_than is None:
        raise UsageError("say what to prune: --keep N and/or --older-than AGE",
                       hint=f"e.g. {suggest('prune --keep 10')} or "
                       f"{suggest('prune --older-than 14d')}.")
    if keep is not None and keep < 0:
        raise UsageError("--keep must be 0 or more")
    doomed: list[BackupFile] = []
    for safety in (False, True):
        counted = 0
        for found in (b for b in backups if b.safety == safety):  # already newest first
            beyond_keep = keep is None or counted >= keep
            counted += counts(found)
            old_enough = older_than is None or found.timestamp < now - older_than
            if beyond_keep and old_enough:
                doomed.append(found)
    kept = [b for b in protect if b is not None]
    protected = next((b for b in kept if b in doomed), None)
    doomed = [b for b in doomed if b not in kept]
    doomed.sort(key=lambda b: (b.timestamp, b.name), reverse=True)
    return doomed, protected


def prune(archive: Archive, *, keep: int | None = None,
          older_than: timedelta | None = None, policy: RetentionPolicy | None = None,
          kinds: Sequence[str] | None = None, yes: bool = False, report: Reporter = SILENT,
          now: datetime | None = None) -> PruneResult:
    """Show (and with yes=True, delete) the backups the rules (or the policy) select among
    those of `kinds` (default: full backups, and safety backups on their own); a deleted
    backup's verdicts and sidecar go with it."""
    counted_kinds = _kinds(kinds)
    listing = archive.listing()
    now = now or utc_now()
    everything = listing.backups
    backups: list[BackupFile] = []
    others: list[BackupFile] = []
    for found in everything:
        kind = archive.facts(found, listing).kind
        # a backup of unknown kind (encrypted, no sidecar) may be a full one: never counted
        (backups if kind in counted_kinds or kind is None else others).append(found)
    verdicts = listing.verdicts
    bad = {b.name for b in backups if verdicts.is_bad(b.name)}
    unknown = {b.name for b in backups if not archive.facts(b, listing).usable} - bad
    newest = archive.newest_good(listing) if FULL in counted_kinds else None
    verified = archive.newest_good(listing, verified=True) if FULL in counted_kinds else None
    reasons: dict[str, list[str]] = {}
    if policy is not None:
        if keep is not None or older_than is not None:
            raise UsageError("a retention policy (--keep-last/-daily/-weekly/-monthly) and "
                             "--keep/--older-than do not mix", hint="Use one or the other.")
        plan = plan_retention(backups, policy, bad=bad, unknown=unknown,
                              newest_good=newest.name if newest else None,
                              newest_verified=verified.name if verified else None)
        doomed, reasons = plan.delete, plan.keep
        protected = next((b for b in (newest, verified) if b is not None and reasons.get(
            b.name) in ([NEWEST_GOOD], [NEWEST_VERIFIED])), None)
    else:
        doomed, protected = plan_prune(
            backups, keep=keep, older_than=older_than, now=now,
            counts=lambda b: b.name not in bad and b.name not in unknown,
            protect=(newest, verified))
    result = PruneResult(backup_dir=str(archive), dry_run=not yes,
                         delete=[b.name for b in doomed],
                         keep=[b.name for b in everything if b not in doomed],
                         protected=protected.name if protected else None,
                         policy=str(policy) if policy is not None else None, reasons=reasons,
                         kinds=sorted(counted_kinds), not_counted=[b.name for b in others])
    report.line(f"🧹 {len(backups)} backup(s) in {archive}"
                + (f", policy {policy}" if policy is not None else "")
                + f": keeping {len(backups) - len(doomed)}, "
                f"{'deleting' if yes else 'would delete'} {len(doomed)}")
    if others:
        report.line(f"ℹ️  {len(others)} backup(s) of other kinds not counted (tenant, "
                    "anonymized, partial): `prune --kind KIND` prunes those")
    if protected:
        why = "newest verified" if protected is verified and protected is not newest \
            else "newest good"
        report.line(f"🛡️  Keeping {protected.name}: it is the {why} backup")
    for found in backups:
        if found.name in reasons:
            report.line(f"📌 {found.name}: {', '.join(reasons[found.name])}")
    for found in doomed:
        report.line(f"🗑️  {found.name} ({human_size(found.size)})")
        if yes:
            archive.delete(found, listing)
        result.freed_bytes += found.size
    if FULL in counted_kinds:
        _prune_segments(archive, listing, [b for b in everything if b not in doomed], result,
                        yes, report)
    _remove_stale_uploads(archive, result, yes, now, report)
    if not doomed and not result.stale_temp_files and not result.segments_deleted:
        report.line("✅ Nothing to prune.")
    elif yes:
        report.line(f"✅ Deleted {len(doomed)} backup(s), {human_size(result.freed_bytes)} freed")
    else:
        report.line(f"ℹ️  Dry run: nothing deleted. To delete {len(doomed)} file(s) "
                    f"({human_size(result.freed_bytes)}): {suggest_flag('--yes')}")
    return result


def _prune_segments(archive: Archive, listing: Listing, kept: list[BackupFile],
                    result: PruneResult, yes: bool, report: Reporter) -> None:
    """Change segments wholly before the oldest start of replay (meta "capture" walLsn) of the
    full and tenant backups kept: `restore --at` never reads them. A backup whose snapshot
    missed transactions as they committed ("committedInSnapshot") starts earlier: replay
    looks for them in the segments LOOK_BACK before its snapshot. While no kept backup
    records a start, every segment is kept."""
    starts = []
    for found in kept:
        facts = archive.facts(found, listing)
        capture = facts.capture or {}
        wal = capture.get("walLsn")
        if facts.usable and facts.kind in (FULL, TENANT) and isinstance(wal, str):
            with contextlib.suppress(ValueError):
                starts.append(_replay_from(archive, listing, capture, parse_lsn(wal)))
    if not starts:
        return
    floor = min(starts)
    doomed = [s for s in listing.segments if s.end_lsn <= floor]
    result.segments_deleted = [s.name for s in doomed]
    if doomed:
        size = sum(s.size for s in doomed)
        report.line(f"🗑️  {len(doomed)} change segment(s) older than every kept backup "
                    f"({human_size(size)}){'' if yes else ': would delete'}")
        result.freed_bytes += size
    if yes:
        for segment in doomed:
            archive.delete_segment(segment)


def _replay_from(archive: Archive, listing: Listing, capture: dict[str, Any],
                 wal: int) -> int:
    """The LSN from which `restore --at` may read segments for a backup starting at `wal`."""
    taken = commit_time(capture.get("snapshotTime"))
    if not capture.get("committedInSnapshot") or taken is None:
        return wal
    return min((s.start_lsn for s in walk_back(listing.segments, wal, taken - LOOK_BACK,
                                               archive.segment_facts)), default=wal)


def _kinds(kinds: Sequence[str] | None) -> set[str]:
    if not kinds:
        return {FULL, SAFETY}
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UsageError(f"unknown backup kind(s): {', '.join(unknown)}",
                         hint=f"Kinds: {', '.join(KINDS)}.")
    return set(kinds)


def _remove_stale_uploads(archive: Archive, result: PruneResult, yes: bool, now: datetime,
                          report: Reporter) -> None:
    """Uploads left by runs of this tool killed (kill -9, power loss, a lost network) more
    than a day ago: temp files in a directory, unfinished uploads in a bucket."""
    stale = archive.store.abort_incomplete(STALE_TEMP_AGE, now=now, dry_run=not yes)
    result.stale_temp_files = [u.name for u in stale]
    if stale:
        report.line(f"🧹 {'Removed' if yes else 'Would remove'} {len(stale)} unfinished "
                    "upload(s) of runs killed over a day ago")
