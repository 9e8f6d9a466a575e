"""Retention by policy (grandfather-father-son): the planning function on synthetic timestamps,
and `prune --policy` against a directory of backups."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.backup import write_fake_backup

from ops.backup.archive import Archive
from ops.backup.files import BackupFile, BackupRef, backup_filename
from ops.backup.prune import prune
from ops.backup.retention import (
    BAD_KEPT,
    NEWEST_GOOD,
    NEWEST_VERIFIED,
    UNKNOWN_KEPT,
    RetentionPolicy,
    plan_retention,
)
from ops.backup.storage.local import LocalStore
from ops.backup.verdicts import BAD, VERIFIED, record_verdict
from ops.core.errors import OpsError


def synthetic(moments: list[datetime], *, safety: bool = False) -> list[BackupFile]:
    """BackupFiles (no files behind them) at these moments, newest first."""
    store = LocalStore(Path("/nonexistent"))
    prefix = "pre-restore-" if safety else "backup-"
    found = [BackupFile(BackupRef(store, backup_filename(m, prefix=prefix)), m, 100, False,
                        False, safety) for m in moments]
    return sorted(found, key=lambda b: b.timestamp, reverse=True)


def dailies(first: date, last: date) -> list[BackupFile]:
    days = (last - first).days + 1
    return synthetic([datetime(first.year, first.month, first.day, 3, tzinfo=UTC)
                      + timedelta(days=n) for n in range(days)])


def kept_days(plan) -> set[str]:
    return {name[7:17] for name in plan.keep}


def test_a_year_of_dailies_keeps_the_last_days_weeks_and_months():
    backups = dailies(date(2024, 1, 1), date(2024, 12, 31))  # 366 (a leap year)

    plan = plan_retention(backups, RetentionPolicy(last=3, daily=7, weekly=4, monthly=12))

    assert kept_days(plan) == {
        # the last 7 days (the last 3 among them)
        "2024-12-31", "2024-12-30", "2024-12-29", "2024-12-28", "2024-12-27", "2024-12-26",
        "2024-12-25",
        # the newest of each of 4 ISO weeks: 2025-W01 (Dec 30-31), W52, W51, W50
        "2024-12-22", "2024-12-15",
        # the newest of each of 12 months
        "2024-11-30", "2024-10-31", "2024-09-30", "2024-08-31", "2024-07-31", "2024-06-30",
        "2024-05-31", "2024-04-30", "2024-03-31", "2024-02-29", "2024-01-31",
    }
    assert len(plan.delete) == 366 - 20
    newest = backups[0].name
    assert plan.keep[newest] == ["last 1", "daily 2024-12-31", "weekly 2025-W01",
                                 "monthly 2024-12"]
    assert plan.keep[backups[1].name] == ["last 2", "daily 2024-12-30"]
    assert plan.keep[next(b.name for b in backups if "2024-12-15" in b.name)] == \
        ["weekly 2024-W50"]


def test_only_the_rules_given_apply():
    backups = dailies(date(2024, 1, 1), date(2024, 3, 1))

    assert list(plan_retention(backups, RetentionPolicy(last=2)).keep) == \
        [b.name for b in backups[:2]]
    monthly = plan_retention(backups, RetentionPolicy(monthly=2))
    assert kept_days(monthly) == {"2024-03-01", "2024-02-29"}


def test_several_backups_a_day_count_once_per_day():
    moments = [datetime(2024, 5, d, h, tzinfo=UTC) for d in (1, 2, 3) for h in (0, 6, 12, 18)]

    plan = plan_retention(synthetic(moments), RetentionPolicy(daily=2))

    assert sorted(plan.keep) == sorted(backup_filename(datetime(2024, 5, d, 18, tzinfo=UTC))
                                       for d in (2, 3))


def test_a_backup_that_failed_verification_stays_until_a_newer_good_one_exists():
    backups = dailies(date(2024, 6, 1), date(2024, 6, 5))  # newest first: 5th .. 1st
    bad = {backups[0].name, backups[3].name}  # the newest, and one with newer good ones

    plan = plan_retention(backups, RetentionPolicy(last=2), bad=bad,
                          newest_good=backups[1].name)

    assert plan.keep == {backups[0].name: [BAD_KEPT],  # no newer good backup: kept
                         backups[1].name: ["last 1"],  # bad ones fill no slot
                         backups[2].name: ["last 2"]}
    assert [b.name for b in plan.delete] == [backups[3].name, backups[4].name]


def test_the_newest_good_backup_is_kept_whatever_the_rules_say():
    backups = dailies(date(2024, 6, 1), date(2024, 6, 3))

    # the newest two do not look complete (they are what the rules pick)
    plan = plan_retention(backups, RetentionPolicy(last=1), newest_good=backups[2].name)

    assert plan.keep == {backups[0].name: ["last 1"], backups[2].name: [NEWEST_GOOD]}


def test_safety_backups_are_counted_on_their_own():
    moments = [datetime(2024, 6, d, tzinfo=UTC) for d in (1, 2, 3)]
    backups = synthetic(moments) + synthetic(moments, safety=True)

    plan = plan_retention(sorted(backups, key=lambda b: b.timestamp, reverse=True),
                          RetentionPolicy(last=1))

    assert sorted(plan.keep) == sorted([backup_filename(moments[2]),
                                        backup_filename(moments[2], prefix="pre-restore-")])


def test_a_policy_needs_a_rule_and_counts_of_at_least_one():
    with pytest.raises(OpsError, match="no retention rules"):
        plan_retention([], RetentionPolicy())
    with pytest.raises(OpsError, match="--keep-daily must be at least 1"):
        RetentionPolicy.from_counts({"daily": 0})


def test_prune_policy_deletes_from_the_store_with_the_verdicts_of_what_it_deletes(
        backup_dir: Path):
    now = datetime(2024, 6, 30, 12, tzinfo=UTC)
    paths = [write_fake_backup(backup_dir, now - timedelta(days=n)) for n in range(10)]
    broken_newest = write_fake_backup(backup_dir, now + timedelta(hours=1), complete=False)
    record_verdict(BackupRef(LocalStore(backup_dir), paths[5].name), BAD, problem="flipped")
    record_verdict(BackupRef(LocalStore(backup_dir), paths[8].name), VERIFIED)

    plan = prune(Archive.at(backup_dir), policy=RetentionPolicy(last=1, daily=3), now=now)
    assert plan.dry_run and all(p.exists() for p in paths)
    # cut short, so it fills no slot; kept while no newer good backup exists
    assert plan.reasons[broken_newest.name] == [UNKNOWN_KEPT]
    assert plan.reasons[paths[0].name] == ["last 1", "daily 2024-06-30"]
    assert plan.reasons[paths[8].name] == [NEWEST_VERIFIED]  # the only verified one

    done = prune(Archive.at(backup_dir), policy=RetentionPolicy(last=1, daily=3), yes=True,
                 now=now)

    left = {b.name for b in Archive.at(backup_dir).backups()}
    assert left == {broken_newest.name, *(paths[n].name for n in (0, 1, 2, 8))}
    assert set(done.delete) == {paths[n].name for n in (3, 4, 5, 6, 7, 9)}
    # the .bad went with its backup; the .verified of the kept one stays
    assert set(Archive.at(backup_dir).verdicts().found) == {paths[8].name}
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(
        [*left, paths[8].name + ".verified"])


def test_prune_policy_dry_run_prints_the_rule_that_keeps_each_file(run_cli, backup_dir: Path):
    now = datetime.now(UTC)
    paths = [write_fake_backup(backup_dir, now - timedelta(days=n)) for n in range(4)]

    done = run_cli("prune", "--policy", "--keep-last", "1", "--keep-daily", "2", "--dry-run")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("policy last 1, daily 2: keeping 2, would delete 2")
    assert f"📌 {paths[0].name}: last 1, daily {now:%Y-%m-%d}" in lines
    assert f"📌 {paths[1].name}: daily {now - timedelta(days=1):%Y-%m-%d}" in lines
    assert any(line.startswith(f"🗑️  {paths[3].name}") for line in lines)
    assert all(p.exists() for p in paths)


def test_prune_policy_takes_its_rules_from_backup_keep_settings(run_cli, backup_dir: Path):
    now = datetime.now(UTC)
    paths = [write_fake_backup(backup_dir, now - timedelta(hours=n)) for n in range(3)]

    done = run_cli("prune", "--policy", "--yes", "--json", env={"BACKUP_KEEP_LAST": "2"})

    assert done.returncode == 0, done.stderr
    assert [p.exists() for p in paths] == [True, True, False]


def test_prune_policy_without_rules_and_mixed_rules_are_one_line_usage_errors(run_cli):
    none = run_cli("prune", "--policy")
    mixed = run_cli("prune", "--keep", "2", "--keep-daily", "3")
    both = run_cli("prune", "--keep", "2", "--yes", "--dry-run")

    assert none.returncode == 2 and "--policy needs retention rules" in none.stderr
    assert mixed.returncode == 2 and "do not mix" in mixed.stderr
    assert both.returncode == 2 and "contradict" in both.stderr
    assert "Traceback" not in none.stderr + mixed.stderr + both.stderr
