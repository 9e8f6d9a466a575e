"""Retention by policy: keep the last N, and the newest backup of each of the last D days, W
weeks and M months (grandfather-father-son, as restic and borg count it).

Only the rules given apply: `last=2` alone keeps exactly the two newest. Each rule walks the
backups newest first and keeps the newest one of every period (UTC calendar day, ISO week,
month) it has not seen yet, until it has kept its count; a backup kept by any rule stays.
Backups that failed verification, and those not known to be complete (cut short, or encrypted
without a sidecar), fill no period (they must not stand in for a good one); each is kept only
while no newer good backup exists, as the evidence of what went wrong. Whatever the rules say,
the newest good backup and the newest verified one are never deleted. Safety backups
(`pre-restore-*`) are counted on their own, like `prune --keep` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ops.backup.files import BackupFile
from ops.core.config import KEEP_RULES
from ops.core.errors import UsageError

NEWEST_GOOD = "the newest good backup"
NEWEST_VERIFIED = "the newest verified backup"
BAD_KEPT = "failed verification; kept until a newer good backup exists"
UNKNOWN_KEPT = "not known to be complete; kept until a newer good backup exists"

# rule -> (the period a backup falls in, how the period is shown)
_PERIODS: dict[str, Callable[[datetime, int], object]] = {
    "last": lambda moment, index: index,
    "daily": lambda moment, index: moment.date(),
    "weekly": lambda moment, index: moment.isocalendar()[:2],
    "monthly": lambda moment, index: (moment.year, moment.month),
}


def _label(rule: str, moment: datetime, index: int) -> str:
    if rule == "last":
        return f"last {index + 1}"
    if rule == "daily":
        return f"daily {moment:%Y-%m-%d}"
    if rule == "weekly":
        year, week, _ = moment.isocalendar()
        return f"weekly {year}-W{week:02d}"
    return f"monthly {moment:%Y-%m}"


@dataclass(frozen=True)
class RetentionPolicy:
    """How many to keep per rule; a rule that is None does not apply."""

    last: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None

    @classmethod
    def from_counts(cls, counts: Mapping[str, int | None]) -> RetentionPolicy:
        for rule, count in counts.items():
            if count is not None and count < 1:
                raise UsageError(f"--keep-{rule} must be at least 1, not {count}",
                                 hint="Leave the rule out to not apply it.")
        return cls(**{rule: counts.get(rule) for rule in KEEP_RULES})

    def rules(self) -> list[tuple[str, int]]:
        return [(rule, count) for rule in KEEP_RULES
                if (count := getattr(self, rule)) is not None]

    def __bool__(self) -> bool:
        return bool(self.rules())

    def __str__(self) -> str:
        return ", ".join(f"{rule} {count}" for rule, count in self.rules()) or "no rules"


@dataclass
class RetentionPlan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # name -> why, newest first
    delete: list[BackupFile] = field(default_factory=list)  # newest first


def plan_retention(backups: list[BackupFile], policy: RetentionPolicy, *,
                   bad: frozenset[str] | set[str] = frozenset(),
                   unknown: frozenset[str] | set[str] = frozenset(),
                   newest_good: str | None = None,
                   newest_verified: str | None = None) -> RetentionPlan:
    """Which backups the policy keeps (with the rules that keep each) and which it deletes.

    `backups` newest first, as the archive lists them; `bad` names those that failed
    verification, `unknown` those not known to be complete; `newest_good` and
    `newest_verified` are kept whatever the rules say.
    """
    if not policy:
        raise UsageError("no retention rules given",
                         hint="Pass --keep-last, --keep-daily, --keep-weekly and/or "
                         "--keep-monthly (or set BACKUP_KEEP_LAST, ...).")
    plan = RetentionPlan()
    for safety in (False, True):
        group = [b for b in backups if b.safety == safety]
        uncounted = {*bad, *unknown}
        reasons = _apply_rules([b for b in group if b.name not in uncounted], policy)
        for found in group:
            if found.name in uncounted and not _newer_good(found, group, uncounted):
                reasons[found.name] = [BAD_KEPT if found.name in bad else UNKNOWN_KEPT]
            elif found.name == newest_good and found.name not in reasons:
                reasons[found.name] = [NEWEST_GOOD]
            elif found.name == newest_verified and found.name not in reasons:
                reasons[found.name] = [NEWEST_VERIFIED]
            if found.name in reasons:
                plan.keep[found.name] = reasons[found.name]
            else:
                plan.delete.append(found)
    return plan


def _apply_rules(good: list[BackupFile], policy: RetentionPolicy) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {}
    for rule, count in policy.rules():
        period_of = _PERIODS[rule]
        last_period: object = None
        kept = 0
        for index, found in enumerate(good):
            if kept >= count:
                break
            period = period_of(found.timestamp, index)
            if period != last_period:
                reasons.setdefault(found.name, []).append(_label(rule, found.timestamp, kept))
                last_period = period
                kept += 1
    return reasons


def _newer_good(found: BackupFile, group: list[BackupFile], bad: frozenset[str] | set[str]
                ) -> bool:
    return any(other.timestamp > found.timestamp and other.name not in bad for other in group)
