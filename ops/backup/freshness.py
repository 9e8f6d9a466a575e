"""`backups check`: is the newest good backup recent enough? For monitors, cron and probes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ops.backup.archive import Archive
from ops.backup.files import utc_now
from ops.backup.prune import parse_age
from ops.backup.verdicts import DRILLED, VERIFIED

DEFAULT_MAX_AGE = "26h"  # a daily backup, with two hours to spare


@dataclass
class FreshnessCheck:
    ok: bool
    location: str
    max_age: str  # as given: 26h
    newest: str | None = None  # the newest good backup's name
    timestamp: str | None = None
    age_seconds: float | None = None
    status: str | None = None  # verified, restore-drilled, complete or encrypted
    line: str = ""  # what the CLI prints, after ✅ or ❌


def check_freshness(archive: Archive, max_age: str = DEFAULT_MAX_AGE, *,
                    now: datetime | None = None) -> FreshnessCheck:
    """Whether the newest good full backup (known complete, not failed verification; a
    tenant's, anonymized, partial or safety backup does not count) is younger than
    `max_age` (90s, 30m, 26h, 2d, 1w)."""
    limit = parse_age(max_age)
    listing = archive.listing()
    newest = archive.newest_good(listing)
    verdicts = listing.verdicts
    check = FreshnessCheck(ok=False, location=str(archive), max_age=max_age.strip())
    if newest is None:
        check.line = f"no good full backup in {archive} (limit {check.max_age})"
        return check
    age = (now or utc_now()) - newest.timestamp
    known = verdicts.of(newest.name)
    check.newest = newest.name
    check.timestamp = newest.timestamp.isoformat()
    check.age_seconds = round(age.total_seconds(), 3)
    check.status = ("restore-drilled" if DRILLED in known else VERIFIED if VERIFIED in known
                    else "encrypted" if newest.encrypted else "complete")
    check.ok = age < limit
    if check.ok:
        check.line = f"newest backup {format_age(age)} old ({newest.name}, {check.status})"
    else:
        check.line = f"newest backup is {format_age(age)} old (limit {check.max_age})"
    return check


def format_age(age: timedelta) -> str:
    """The two largest units: 45s, 12m30s, 3h12m, 2d4h."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    first = next((i for i, (value, _) in enumerate(units) if value), len(units) - 1)
    return "".join(f"{value}{unit}" for value, unit in units[first:first + 2]
                   if value or unit == units[first][1])
