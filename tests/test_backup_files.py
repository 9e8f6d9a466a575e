"""Backup files: private on disk, never shared or overwritten by concurrent runs, and only what
BACKUP_DIR really holds counts as a backup."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from support.backup import add_tenants_and_clients

from ops.backup import create as backup_module
from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.verify import describe_backups, verify_backup
from ops.backup.writer import BackupWriter, PartOutput
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

pytestmark = pytest.mark.security


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"])
def test_backups_and_their_directory_are_private(settings: Settings, conn, compression: str | None,
                                                 tmp_path: Path):
    add_tenants_and_clients(conn)
    settings = Settings(database_url=settings.database_url,
                        backup_dir=tmp_path / "new-dir", app_env="test")
    old_umask = os.umask(0o022)
    try:
        written = backup(settings, compression=compression)
    finally:
        os.umask(old_umask)
    assert mode(settings.backup_dir) == 0o700
    assert mode(written.path) == 0o600


def test_the_safety_backup_is_private(settings: Settings, conn):
    add_tenants_and_clients(conn)
    source = backup(settings)
    result = restore(settings, source.path)
    assert result.safety_backup is not None and mode(Path(result.safety_backup)) == 0o600


def test_parallel_part_files_are_private(settings: Settings, conn, monkeypatch):
    add_tenants_and_clients(conn, tenants=20, clients_each=50)
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)
    modes: list[int] = []
    create_part = BackupWriter.part

    def observed(self: BackupWriter, index: int) -> PartOutput:
        part = create_part(self, index)
        modes.extend([mode(part.path), mode(part.path.parent)])
        return part

    monkeypatch.setattr(BackupWriter, "part", observed)
    written = backup(settings, jobs=3)
    assert modes and set(modes[::2]) == {0o600} and set(modes[1::2]) == {0o700}
    assert mode(written.path) == 0o600


def _forked(run) -> int:
    """Run `run()` in a forked child; the child's exit status (0 ok, 1 OpsError)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            run()
        except OpsError:
            code = 1
        except BaseException:
            code = 2
        os._exit(code)
    return pid


def _wait(pids: list[int]) -> list[int]:
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


def test_two_backups_to_one_output_name_never_share_a_file(settings: Settings, conn):
    add_tenants_and_clients(conn, tenants=30, clients_each=100)
    target = settings.backup_dir / "nightly.json"
    full = _forked(lambda: backup(settings, output=target, jobs=1))
    partial = _forked(lambda: backup(settings, output=target, tables=["tenants"], jobs=1))
    codes = sorted(_wait([full, partial]))
    assert codes == [0, 1]  # one wrote it, the other stopped with one line
    checked = verify_backup(target)
    assert checked.ok, checked.problem
    assert sorted(p.name for p in settings.backup_dir.iterdir()) == ["nightly.json",
                                                                    "nightly.json.sum"]


def test_backups_started_in_the_same_millisecond_get_distinct_names(settings: Settings, conn,
                                                                     monkeypatch):
    add_tenants_and_clients(conn, tenants=30, clients_each=100)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    monkeypatch.setattr(backup_module, "utc_now", lambda: moment)
    pids = [_forked(lambda: backup(settings, jobs=1)) for _ in range(3)]
    assert _wait(pids) == [0, 0, 0]
    found = Archive.at(settings.backup_dir).backups()
    assert len(found) == 3 and len({b.name for b in found}) == 3
    assert all(verify_backup(b.path).ok for b in found)


def test_an_existing_output_file_is_never_overwritten(settings: Settings, conn):
    target = settings.backup_dir / "mine.json"
    target.write_text("precious")
    with pytest.raises(OpsError, match="already exists"):
        backup(settings, output=target)
    assert target.read_text() == "precious"


def test_a_backup_named_link_leading_outside_backup_dir_is_not_a_backup(
        settings: Settings, conn, tmp_path: Path, run_cli):
    add_tenants_and_clients(conn)
    outside = backup(settings, output=tmp_path / "elsewhere.json").path
    link = settings.backup_dir / "backup-2099-01-01T00-00-00-000Z.json"
    link.symlink_to(outside)
    assert Archive.at(settings.backup_dir).backups() == []
    assert Archive.at(settings.backup_dir).latest() is None
    assert describe_backups(Archive.at(settings.backup_dir)) == []
    for args in (["verify", "latest"], ["restore", "latest", "--no-safety-backup"]):
        refused = run_cli(*args)
        assert refused.returncode == 1, refused.stdout
        assert "no" in refused.stderr.lower() and "backup" in refused.stderr
    assert "No backups" in run_cli("backups").stdout


def test_a_link_inside_backup_dir_still_counts(settings: Settings, conn):
    add_tenants_and_clients(conn)
    real = backup(settings).path
    link = settings.backup_dir / "backup-2099-01-01T00-00-00-000Z.json"
    link.symlink_to(real.name)
    assert [b.name for b in Archive.at(settings.backup_dir).backups()][0] == link.name


def test_restore_ignores_rows_from_a_link_outside(settings: Settings, conn: psycopg.Connection,
                                                  tmp_path: Path):
    add_tenants_and_clients(conn)
    mine = backup(settings).path
    conn.execute("DELETE FROM clients")
    elsewhere = backup(settings, output=tmp_path / "other.json").path
    (settings.backup_dir / "backup-2099-01-01T00-00-00-000Z.json").symlink_to(elsewhere)
    result = restore(settings, "latest", safety_backup=False)
    assert result.source == str(mine)
    assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 4


def test_partial_backups_are_marked_and_restoring_one_says_so_loudly(run_cli, conn,
                                                                     settings: Settings):
    add_tenants_and_clients(conn)
    backup(settings)
    assert run_cli("backup", "--tables", "tenants").returncode == 0
    listing = run_cli("backups").stdout.splitlines()
    assert "PARTIAL: only tenants" in listing[1]  # the newest, first
    assert "PARTIAL" not in listing[2]
    partial = listing[1].split()[1]
    restored = run_cli("restore", partial, "--no-safety-backup")  # never picked as latest
    assert restored.returncode == 0, restored.stderr
    assert "PARTIAL BACKUP (ONLY TENANTS): TABLES IT LACKS WILL BE EMPTIED" in restored.stderr
    assert any("PARTIAL" in note for note in json.loads(run_cli(
        "restore", partial, "--no-safety-backup", "--only-listed-tables", "--json").stdout
    )["notes"])


def test_latest_skips_a_backup_that_failed_verification(settings: Settings, conn):
    from ops.backup.files import as_ref
    from ops.backup.verdicts import BAD, record_verdict

    add_tenants_and_clients(conn)
    good = backup(settings).path
    newer = backup(settings).path
    record_verdict(as_ref(newer), BAD, problem="flipped byte")
    assert Archive.at(settings.backup_dir).latest().path == good
    assert restore(settings, "latest", dry_run=True).source == str(good)
