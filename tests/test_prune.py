"""`prune`: keeps the right files, deletes only with --yes, never the newest good backup,
ignores files that are not backups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.backup import write_fake_backup

from ops.backup.archive import Archive
from ops.backup.prune import parse_age, prune
from ops.core.errors import OpsError

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


@pytest.fixture
def five(backup_dir: Path) -> list[Path]:
    """Five complete backups, 0..4 days old, newest first."""
    return [write_fake_backup(backup_dir, days_ago(n)) for n in range(5)]


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_prune_without_yes_deletes_nothing(backup_dir: Path, five: list[Path]) -> None:
    result = prune(Archive.at(backup_dir), keep=2, now=NOW)
    assert result.dry_run and result.delete == names(five[2:])
    assert all(p.exists() for p in five)


def test_prune_keep_n_deletes_all_but_the_n_newest(backup_dir: Path, five: list[Path]) -> None:
    result = prune(Archive.at(backup_dir), keep=2, yes=True, now=NOW)
    assert result.delete == names(five[2:]) and result.keep == names(five[:2])
    assert [p.exists() for p in five] == [True, True, False, False, False]


def test_prune_older_than_deletes_only_old_files(backup_dir: Path, five: list[Path]) -> None:
    prune(Archive.at(backup_dir), older_than=timedelta(days=2, hours=12), yes=True, now=NOW)
    assert [p.exists() for p in five] == [True, True, True, False, False]


def test_prune_with_both_rules_deletes_only_what_both_allow(backup_dir: Path,
                                                            five: list[Path]) -> None:
    result = prune(Archive.at(backup_dir), keep=1, older_than=timedelta(days=3, hours=12), now=NOW)
    assert result.delete == names(five[4:])
    result = prune(Archive.at(backup_dir), keep=4, older_than=timedelta(hours=1), now=NOW)
    assert result.delete == names(five[4:])


def test_prune_never_deletes_the_newest_good_backup(backup_dir: Path) -> None:
    broken_newer = write_fake_backup(backup_dir, days_ago(0), complete=False)
    good = write_fake_backup(backup_dir, days_ago(1))
    older = write_fake_backup(backup_dir, days_ago(2))
    result = prune(Archive.at(backup_dir), keep=0, yes=True, now=NOW)
    assert result.protected == good.name
    assert good.exists() and not broken_newer.exists() and not older.exists()


def test_prune_ignores_files_that_are_not_backups(backup_dir: Path, five: list[Path]) -> None:
    others = [backup_dir / "notes.txt", backup_dir / "backup-latest.json",
              backup_dir / ".backup-2024-01-01T00-00-00-000Z.json.partial",
              backup_dir / "backup-2024-01-01T00-00-00-000Z.json.bak"]
    for other in others:
        other.write_text("x")
    prune(Archive.at(backup_dir), keep=0, yes=True, now=NOW)
    assert all(o.exists() for o in others)
    assert [p.exists() for p in five] == [True, False, False, False, False]


def test_prune_counts_safety_backups_separately(backup_dir: Path, five: list[Path]) -> None:
    safety = [write_fake_backup(backup_dir, days_ago(n + 0.5), safety=True) for n in range(3)]
    result = prune(Archive.at(backup_dir), keep=2, now=NOW)
    assert set(result.delete) == set(names(five[2:]) + names(safety[2:]))


def test_prune_needs_a_rule_and_reads_ages() -> None:
    with pytest.raises(OpsError) as err:
        prune(Archive.at(Path(".")), now=NOW)
    assert err.value.exit_code == 2
    assert parse_age("14d") == timedelta(days=14) and parse_age("12h") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2)
    with pytest.raises(OpsError):
        parse_age("fortnight")


def test_prune_cli_dry_run_then_yes(run_cli, backup_dir: Path) -> None:
    now = datetime.now(UTC)
    paths = [write_fake_backup(backup_dir, now - timedelta(days=n)) for n in range(3)]
    done = run_cli("prune", "--keep", "1")
    assert done.returncode == 0, done.stderr
    assert "would delete 2" in done.stdout and "--yes" in done.stdout
    assert all(p.exists() for p in paths)

    done = run_cli("prune", "--older-than", "36h", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delete"] == [paths[2].name]
    assert [p.exists() for p in paths] == [True, True, False]


def test_prune_cli_usage_errors_exit_2(run_cli) -> None:
    assert run_cli("prune").returncode == 2
    done = run_cli("prune", "--older-than", "soon")
    assert done.returncode == 2 and "cannot read age" in done.stderr


def test_prune_removes_temp_files_of_runs_killed_over_a_day_ago(backup_dir: Path,
                                                                five: list[Path]) -> None:
    import os

    stale = backup_dir / ".backup-2024-05-30T00-00-00-000Z.json.tasklets-41.abc12345.partial"
    fresh = backup_dir / ".backup-2024-06-01T11-59-00-000Z.json.tasklets-42.def67890.partial"
    # hidden .partial files another program named (even like ours, but without our mark):
    # never ours to remove, however old
    foreign = [backup_dir / ".backup-2024-05-30T00-00-00-000Z.json.partial",
               backup_dir / ".backup-2024-05-30T00-00-00-000Z.json.abc12345.partial",
               backup_dir / ".backup-2024-05-30T00-00-00-000Z.json.tasklets.abc12345.partial",
               backup_dir / ".notes.txt.abc12345.partial"]
    for path, age in ((stale, days_ago(2)), (fresh, days_ago(0.01)),
                      *((f, days_ago(30)) for f in foreign)):
        path.write_bytes(b"{")
        os.utime(path, (age.timestamp(), age.timestamp()))
    planned = prune(Archive.at(backup_dir), keep=10, now=NOW)
    assert planned.stale_temp_files == [stale.name.split(".tasklets")[0][1:]]
    assert stale.exists()
    done = prune(Archive.at(backup_dir), keep=10, yes=True, now=NOW)
    assert done.stale_temp_files == planned.stale_temp_files
    assert not stale.exists() and fresh.exists() and all(f.exists() for f in foreign)
