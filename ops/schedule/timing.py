"""When the scheduler runs: every fixed interval, or on a cron expression (UTC).

Intervals are counted from the Unix epoch (`--every 6h` runs at 00:00, 06:00, 12:00 and
18:00 UTC), so every scheduler given the same schedule wakes for the same moments: that is
what lets two of them agree that a moment's backup was taken (ops.schedule.scheduler).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ops.backup.prune import parse_age
from ops.core.errors import UsageError

_INTERVAL = re.compile(r"^\s*\d+\s*[smhdw]\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXAMPLES = "an interval (--every 6h: 90s, 30m, 6h, 1d, 1w) or a cron expression " \
    "(--cron \"0 3 * * *\", in UTC)"


@dataclass(frozen=True)
class Schedule:
    every: timedelta | None = None
    cron: str | None = None

    def __str__(self) -> str:
        if self.every is not None:
            return f"every {_short(self.every)}"
        return f"cron \"{self.cron}\" (UTC)"

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled moment strictly after `moment`."""
        if self.every is not None:
            steps = (moment - _EPOCH) // self.every
            return _EPOCH + (steps + 1) * self.every
        from croniter import croniter

        following: datetime = croniter(self.cron, moment).get_next(datetime)
        return following

    def latest(self, moment: datetime) -> datetime:
        """The last scheduled moment at or before `moment`."""
        if self.every is not None:
            return _EPOCH + ((moment - _EPOCH) // self.every) * self.every
        from croniter import croniter

        before: datetime = croniter(self.cron, moment).get_prev(datetime)
        # `moment` itself, if scheduled
        after: datetime = croniter(self.cron, before).get_next(datetime)
        return after if after <= moment else before

    def interval_at(self, moment: datetime) -> timedelta:
        """The time between the next two scheduled moments (backoff counts in these)."""
        first = self.next_after(moment)
        return self.next_after(first) - first


def parse_schedule(*, every: str | None = None, cron: str | None = None,
                   setting: str = "") -> Schedule:
    """--every or --cron (not both), else BACKUP_SCHEDULE in either form."""
    if every and cron:
        raise UsageError("--every and --cron do not mix", hint="Give one of them.")
    if every:
        return _interval(parse_age(every))
    if cron:
        return _cron(cron, "--cron")
    if not setting:
        raise UsageError("no schedule: say when backups run",
                         hint="Pass --every 6h or --cron \"0 3 * * *\" (or set "
                         "BACKUP_SCHEDULE), or --once for a single run.")
    if _INTERVAL.match(setting):
        return _interval(parse_age(setting))
    return _cron(setting, "BACKUP_SCHEDULE")


def _interval(step: timedelta) -> Schedule:
    if step < timedelta(seconds=1):
        raise UsageError("the interval must be at least 1s")
    return Schedule(every=step)


def _cron(text: str, where: str) -> Schedule:
    from croniter import croniter

    if not croniter.is_valid(text.strip()):
        raise UsageError(f"{where}={text!r} is not a schedule", hint=f"Use {EXAMPLES}.")
    return Schedule(cron=text.strip())


def _short(step: timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
