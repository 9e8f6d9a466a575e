"""`backups check --max-age`: exit 0 when the newest good backup is younger, 1 when it is older
or there is none; one line, or JSON; on every store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.backup import write_fake_backup
from support.storage import Backend

from ops.backup.archive import Archive
from ops.backup.files import BackupRef
from ops.backup.freshness import check_freshness, format_age
from ops.backup.storage.local import LocalStore
from ops.backup.verdicts import BAD, VERIFIED, record_verdict

pytest_plugins = ["support.storage_servers"]


def test_check_on_every_store(run_cli, sample: dict, backend: Backend):
    env = {**(backend.server.env if backend.server else {}), "BACKUP_DIR": backend.location}

    empty = run_cli("backups", "check", env=env)
    made = run_cli("backup", "--compress", env=env)
    fresh = run_cli("backups", "check", "--max-age", "1h", env=env)
    as_json = run_cli("backups", "check", "--json", env=env)

    assert empty.returncode == 1
    assert empty.stderr == f"❌ no good full backup in {backend.location} (limit 26h)\n"
    assert made.returncode == 0, made.stderr
    assert fresh.returncode == 0, fresh.stderr
    (newest,) = Archive.at(backend.location).backups()
    assert fresh.stdout.startswith("✅ newest backup ")
    assert fresh.stdout.endswith(f" old ({newest.name}, complete)\n")
    checked = json.loads(as_json.stdout)
    assert checked["ok"] is True and checked["newest"] == newest.name
    assert checked["max_age"] == "26h" and checked["status"] == "complete"
    later = check_freshness(Archive.at(backend.location), "26h",
                            now=newest.timestamp + timedelta(days=2, hours=4))
    assert not later.ok and later.line == "newest backup is 2d4h old (limit 26h)"


def test_exit_codes_for_an_old_a_bad_and_a_verified_newest_backup(run_cli, backup_dir: Path):
    now = datetime.now(UTC)
    old = write_fake_backup(backup_dir, now - timedelta(days=2, hours=4, minutes=1))

    stale = run_cli("backups", "check")
    stale_json = run_cli("backups", "check", "--json", "--max-age", "1w")
    assert stale.returncode == 1
    assert stale.stderr == "❌ newest backup is 2d4h old (limit 26h)\n"
    assert stale_json.returncode == 0 and json.loads(stale_json.stdout)["ok"] is True

    newer = write_fake_backup(backup_dir, now - timedelta(hours=3, minutes=12, seconds=5))
    store = LocalStore(backup_dir)
    record_verdict(BackupRef(store, newer.name), VERIFIED)
    verified = run_cli("backups", "check")
    assert verified.returncode == 0
    assert verified.stdout == f"✅ newest backup 3h12m old ({newer.name}, verified)\n"

    record_verdict(BackupRef(store, newer.name), BAD, problem="flipped byte")
    bad = run_cli("backups", "check", env={"BACKUP_MAX_AGE": "2d"})
    assert bad.returncode == 1  # the bad one does not count; the good one is too old
    assert bad.stderr == "❌ newest backup is 2d4h old (limit 2d)\n"
    assert old.exists()


def test_a_bad_max_age_is_a_usage_error(run_cli):
    done = run_cli("backups", "check", "--max-age", "soon")

    assert done.returncode == 2 and done.stderr.startswith("❌ cannot read age 'soon'")


def test_ages_read_in_two_units():
    assert [format_age(timedelta(seconds=s)) for s in (0, 45, 750, 11520, 187200, 190000)] == \
        ["0s", "45s", "12m30s", "3h12m", "2d4h", "2d4h"]
