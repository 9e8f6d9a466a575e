"""No row reaches a file in the clear while backups are encrypted: the parallel backup's parts
(beside the backups, or spooled for a bucket) and `copy --tenant`'s transfer file live in a
private per-run scratch directory, encrypted to a key held only in memory, removed at the end;
a run killed with SIGKILL leaves only ciphertext, which the next run removes."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519
from support.faults import KILLER
from support.storage_servers import storage_backend
from support.tenants import GLOBEX, insert_two_tenants

from ops.backup import create as backup_module
from ops.backup.compare import compare_database
from ops.backup.create import backup
from ops.backup.encryption import AGE_MAGIC
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.scratch import PREFIX, remove_leftovers, scratch_dir
from ops.restore.tenant import copy_tenant

pytest_plugins = ["support.storage_servers"]

MARKER = "PRIVATE-MARKER-7f3a9c1e"

# Child code (KILLER's `call`): parts for every table, all closed, then SIGKILL before the
# first is spliced into the backup (the moment the most plaintext could be on disk).
KILL_AT_FIRST_SPLICE = """
import tempfile
from ops.backup import create, writer
tempfile.tempdir = {tmp!r}
create.PARALLEL_MIN_BYTES = 0
opened = []
close = writer.PartOutput.close
def closing(self):
    close(self)
    opened.append(self.path)
writer.PartOutput.close = closing
def splice(self, path):
    import time
    for _ in range(500):
        if len(opened) >= {tables}:
            break
        time.sleep(0.01)
    die()
writer.BackupWriter._append_part = splice
create.backup(settings, encrypt_to={recipient!r}, jobs=2, compression={compression!r},
              output={output!r}, report=R)
"""


@pytest.fixture
def marked(conn: psycopg.Connection) -> None:
    """Rows worth several parts, one of them holding MARKER."""
    insert_two_tenants(conn)
    conn.execute("INSERT INTO clients (tenant_id, name, email) SELECT 1, 'client ' || g, "
                 "'c' || g || '@corp.example' FROM generate_series(1, 2000) g")
    conn.execute("UPDATE clients SET name = %s WHERE id = (SELECT max(id) FROM clients)",
                 (MARKER,))


@pytest.fixture
def recipient() -> str:
    return str(x25519.Identity.generate().to_public())


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def holding_marker(*roots: Path) -> list[Path]:
    return [p for p in files_under(*roots) if MARKER.encode() in p.read_bytes()]


def scratch_dirs(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.glob(f"{PREFIX}*")]


def kill_mid_backup(settings: Settings, tmp: Path, recipient: str, compression: str | None,
                    output: str | None = None) -> None:
    call = KILL_AT_FIRST_SPLICE.format(tmp=str(tmp), recipient=recipient,
                                       compression=compression, output=output,
                                       tables=len(_tables(settings)))
    run = subprocess.run([sys.executable, "-c", KILLER, settings.database_url,
                          str(settings.backup_dir), "never", call],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert run.returncode == -9, run.stderr


def _tables(settings: Settings) -> list[str]:
    with psycopg.connect(settings.database_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")]


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_kill_9_mid_encrypted_parallel_backup_leaves_only_ciphertext_then_cleanup(
        settings: Settings, marked, recipient: str, tmp_path: Path, compression,
        monkeypatch: pytest.MonkeyPatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kill_mid_backup(settings, tmp, recipient, compression)

    left = scratch_dirs(settings.backup_dir)
    assert len(left) == 1 and stat.S_IMODE(left[0].stat().st_mode) == 0o700
    parts = [p for p in files_under(left[0]) if p.name.startswith("part")]
    assert len(parts) >= 5 and all(p.stat().st_size > 0 for p in parts)
    assert all(p.read_bytes().startswith(AGE_MAGIC) for p in parts)
    assert holding_marker(settings.backup_dir, tmp) == []

    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)
    backup(settings, encrypt_to=recipient, jobs=2)  # the next run
    assert scratch_dirs(settings.backup_dir) == []
    assert holding_marker(settings.backup_dir, tmp) == []


def test_unencrypted_parts_are_where_the_check_looks(settings: Settings, marked,
                                                     tmp_path: Path):
    """The control: without encryption the parts are plain, and the grep above finds them."""
    kill_mid_backup(settings, tmp_path, "", None)
    assert [p.parent for p in holding_marker(settings.backup_dir)] == \
        scratch_dirs(settings.backup_dir)


def test_bucket_backup_parts_spool_encrypted_into_a_private_temp_dir(
        settings: Settings, marked, recipient: str, tmp_path: Path, storage_servers,
        monkeypatch: pytest.MonkeyPatch):
    """A bucket backup (S3, moto) has no local directory to put its parts beside: they spool
    into the system temp directory, as ciphertext, in a 0700 scratch directory."""
    bucket = storage_backend("s3", storage_servers, monkeypatch, tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kill_mid_backup(settings, tmp, recipient, "zstd", output=f"{bucket.location}/b.json.zst.age")
    (spool,) = scratch_dirs(tmp)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    parts = [p for p in files_under(spool) if p.name.startswith("part")]
    assert parts and all(p.read_bytes().startswith(AGE_MAGIC) for p in parts)
    assert holding_marker(tmp, settings.backup_dir) == []


def test_copy_tenant_transfers_through_an_encrypted_private_file(
        settings: Settings, marked, other_db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    """What copy writes on its way is ciphertext, in a 0700 scratch dir gone afterwards."""
    import tempfile

    from ops.restore import tenant as tenant_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[tuple[int, dict[str, bytes], list[Path]]] = []
    restore_tenant = tenant_module.restore_tenant

    def looking(*args, **kwargs):
        (work,) = scratch_dirs(tmp_path)
        seen.append((stat.S_IMODE(work.stat().st_mode),
                     {f.name: f.read_bytes()[:len(AGE_MAGIC)] for f in files_under(work)},
                     holding_marker(tmp_path)))
        return restore_tenant(*args, **kwargs)

    monkeypatch.setattr(tenant_module, "restore_tenant", looking)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE clients SET tenant_id = %s WHERE name = %s", (GLOBEX, MARKER))
    copy_tenant(settings, str(GLOBEX), other_db_url)
    ((mode, files, plain),) = seen
    assert mode == 0o700 and plain == []
    assert files["tenant.json.age"] == AGE_MAGIC
    assert scratch_dirs(tmp_path) == []
    with psycopg.connect(other_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM clients WHERE name = %s",
                            (MARKER,)).fetchone()[0] == 1


def test_compare_of_an_encrypted_backup_writes_nothing_readable(
        settings: Settings, marked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import tempfile

    identity = x25519.Identity.generate()
    key = tmp_path / "age.key"
    key.write_text(f"{identity}\n")
    key.chmod(0o600)
    made = backup(settings, encrypt_to=str(identity.to_public()))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert compare_database(settings, made.path, identity=key).matches
    assert files_under(tmp) == [] and holding_marker(settings.backup_dir) == []


def _in_child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)


def test_scratch_dir_is_private_removed_on_error_and_a_live_one_is_kept(tmp_path: Path):
    with pytest.raises(RuntimeError), scratch_dir(tmp_path) as work:
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        (work / "x").write_text("rows")
        raise RuntimeError("failing run")
    assert scratch_dirs(tmp_path) == []

    # another process's live scratch directory is never taken for a leftover
    live = _in_child("import sys; from pathlib import Path; "
                     "from ops.core.scratch import scratch_dir\n"
                     f"with scratch_dir(Path({str(tmp_path)!r})) as w:\n"
                     "    print(w, flush=True); sys.stdin.read()")
    assert live.stdout is not None and live.stdin is not None
    work = Path(live.stdout.readline().strip())
    try:
        with scratch_dir(tmp_path):
            assert work.is_dir()
        assert remove_leftovers(tmp_path) == [] and work.is_dir()
    finally:
        live.stdin.close()
        live.wait(timeout=30)
    assert not work.exists()


def test_leftovers_of_dead_runs_are_removed_but_not_foreign_dirs(tmp_path: Path):
    dead = tmp_path / f"{PREFIX}999999999-abcdefgh"  # no such pid, lock not held
    dead.mkdir(mode=0o700)
    (dead / ".lock").touch()
    (dead / "part0").write_bytes(b"ciphertext")
    foreign = tmp_path / "tasklets-scratch-not-ours"
    foreign.mkdir()
    held = tmp_path / f"{PREFIX}999999998-heldheld"  # its pid is gone, but its lock is held
    held.mkdir(mode=0o700)
    fd = os.open(held / ".lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert remove_leftovers(tmp_path) == [dead]
        assert foreign.is_dir() and held.is_dir()
    finally:
        os.close(fd)
