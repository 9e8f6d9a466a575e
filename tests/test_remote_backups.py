"""Backups in every store - a local directory, S3 (moto), GCS (gcp-storage-emulator), Azure
(Azurite) - and encrypted with age: the lifecycle end to end against real servers, and what
happens when the server, the credentials or the keys are wrong."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519
from support.backup import decompress
from support.restore import insert_sample, table_hashes
from support.storage import Backend, child_env, start_server, use_server_env
from support.tenants import (
    GLOBEX,
    SYSTECH,
    change_both_tenants,
    insert_two_tenants,
    tenant_hashes,
)

from ops.anonymize.policy import DEFAULT_POLICY, load_policy
from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.encryption import AGE_MAGIC
from ops.backup.prune import prune
from ops.backup.storage.factory import open_store
from ops.backup.verify import describe_backups, verify_backup
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.core.tenancy import Tenant
from ops.restore.apply import restore
from ops.restore.reset import reset
from ops.restore.snapshot import fresh_from_snapshot
from ops.restore.tenant import restore_tenant

pytest_plugins = ["support.storage_servers"]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, Path]:
    """(an age public key, the identity file that decrypts for it)."""
    identity = x25519.Identity.generate()
    path = tmp_path / "backup.key"
    path.write_text(f"{identity}\n")
    path.chmod(0o600)
    return str(identity.to_public()), path


def remote_settings(db_url: str, backend: Backend, **extra: object) -> Settings:
    return Settings(database_url=db_url, backup_dir=backend.location, app_env="test",
                    **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"], ids=["plain", "zst", "gz"])
def test_backup_reset_restore_round_trip_in_every_store(db_url: str, conn, backend: Backend,
                                                        compression: str | None):
    insert_sample(conn)
    before = table_hashes(conn)
    settings = remote_settings(db_url, backend)
    made = backup(settings, compression=compression)
    assert made.location.startswith(backend.location.rstrip("/"))
    listed = Archive.at(backend.location).backups()
    assert [b.name for b in listed] == [made.name]
    assert verify_backup(listed[0].ref).ok
    reset(settings, confirm=True)
    result = restore(settings, "latest")
    assert table_hashes(conn) == before
    assert result.checksums_verified and result.safety_backup is not None
    assert {b.name for b in Archive.at(backend.location).backups(include_safety=True)} == {
        made.name, Path(result.safety_backup).name}


def test_backups_verify_prune_and_latest_in_every_store(db_url: str, conn, backend: Backend):
    insert_sample(conn)
    settings = remote_settings(db_url, backend)
    names = [backup(settings).name for _ in range(3)]
    listed = describe_backups(Archive.at(backend.location))
    assert [b.name for b in listed] == names[::-1]
    assert all(b.status == "complete (not verified)" and b.rows == 23 for b in listed)
    assert Archive.at(backend.location).latest().name == names[-1]
    planned = prune(Archive.at(backend.location), keep=1)
    assert planned.delete == names[1::-1] and planned.dry_run
    prune(Archive.at(backend.location), keep=1, yes=True)
    assert [b.name for b in Archive.at(backend.location).backups()] == [names[-1]]
    assert restore(settings, names[-1], dry_run=True).total_rows == 23


def test_encrypted_round_trip_in_every_store(db_url: str, conn, backend: Backend, keys):
    public, identity = keys
    insert_sample(conn)
    before = table_hashes(conn)
    settings = remote_settings(db_url, backend, backup_encrypt_to=public,
                               backup_identity_file=identity)
    made = backup(settings, compression="zstd")
    assert made.name.endswith(".json.zst.age") and made.encrypted
    store = open_store(backend.location)
    with store.open_reader(made.name) as raw:
        assert raw.read(len(AGE_MAGIC)) == AGE_MAGIC  # ciphertext at rest
    (listed,) = describe_backups(Archive.at(backend.location))
    # its sidecar tells what it is and that it is whole, without the identity
    assert listed.status == "complete (not verified)" and listed.rows == made.total_rows
    assert verify_backup(Archive.at(backend.location).backups()[0].ref,
                         [x25519.Identity.from_str(identity.read_text().strip())]).ok
    reset(settings, confirm=True)
    result = restore(settings, "latest")
    assert table_hashes(conn) == before
    assert result.safety_backup is not None and result.safety_backup.endswith(".json.zst.age")


def test_tenant_backup_and_restore_encrypted_in_every_store(db_url: str, conn,
                                                             backend: Backend, keys):
    public, identity = keys
    insert_two_tenants(conn)
    settings = remote_settings(db_url, backend, backup_encrypt_to=public,
                               backup_identity_file=identity)
    made = backup(settings, compression="zstd", tenant="Globex")
    assert made.name.endswith(".json.zst.age") and made.tenant == Tenant(GLOBEX, "Globex")
    globex = tenant_hashes(conn, GLOBEX)
    change_both_tenants(conn)
    systech = tenant_hashes(conn, SYSTECH)

    result = restore_tenant(settings, "latest", "Globex")

    assert tenant_hashes(conn, GLOBEX) == globex
    assert tenant_hashes(conn, SYSTECH) == systech
    assert result.safety_backup is not None and result.safety_backup.endswith(".json.zst.age")
    assert result.safety_backup.startswith(backend.location.rstrip("/"))


def test_an_encrypted_anonymized_snapshot_in_a_store_makes_a_fresh_database(
        db_url: str, conn, backend: Backend, keys, other_db_url: str):
    public, identity = keys
    insert_sample(conn)
    settings = remote_settings(db_url, backend, backup_encrypt_to=public,
                               anonymize_salt="a-salt-for-the-snapshot-test")
    made = backup(settings, compression="zstd", anonymize=load_policy(DEFAULT_POLICY))
    assert made.name.endswith(".json.zst.age")
    developer = remote_settings(other_db_url, backend, backup_identity_file=identity)

    result = fresh_from_snapshot(developer, f"{backend.location.rstrip('/')}/{made.name}")

    assert result.anonymized and result.restore.total_rows == made.total_rows
    with psycopg.connect(other_db_url) as fresh:
        emails = [r[0] for r in fresh.execute("SELECT email FROM users")]
    assert emails and all(e.endswith("@example.test") for e in emails)


def test_the_age_cli_decrypts_our_backup(settings: Settings, conn, keys, age_cli: str):
    public, identity = keys
    insert_sample(conn)
    made = backup(settings, compression="zstd", encrypt_to=public)
    done = subprocess.run([age_cli, "--decrypt", "-i", str(identity), str(made.path)],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert decompress(done.stdout).startswith(b'{"timestamp": ')


@pytest.mark.security
def test_no_or_the_wrong_identity_is_refused_and_changes_nothing(settings: Settings, conn,
                                                                 keys, tmp_path: Path):
    public, _ = keys
    insert_sample(conn)
    made = backup(settings, encrypt_to=public)
    conn.execute("DELETE FROM comments")
    before = table_hashes(conn)
    with pytest.raises(OpsError, match="encrypted and no identity") as caught:
        restore(settings, made.name)
    assert "BACKUP_IDENTITY_FILE" in (caught.value.hint or "")
    other = tmp_path / "other.key"
    other.write_text(f"{x25519.Identity.generate()}\n")
    with pytest.raises(OpsError, match="encrypted to other keys"):
        restore(settings, made.name, identity=other)
    assert table_hashes(conn) == before
    assert [b.name for b in Archive.at(settings.backup_dir).backups(include_safety=True)] == [
        made.name]


@pytest.mark.security
def test_a_tampered_ciphertext_is_refused_with_nothing_written(settings: Settings, conn, keys):
    public, identity = keys
    insert_sample(conn)
    made = backup(settings, encrypt_to=public)
    data = bytearray(made.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    made.path.write_bytes(bytes(data))
    conn.execute("DELETE FROM comments")
    before = table_hashes(conn)
    with pytest.raises(OpsError, match="damaged or truncated"):
        restore(settings, made.name, identity=identity)
    assert table_hashes(conn) == before
    assert not verify_backup(made.path, [x25519.Identity.from_str(
        identity.read_text().strip())]).ok
    assert [b.name for b in Archive.at(settings.backup_dir).backups(include_safety=True)] == [
        made.name]


_KILLED_BACKUP = """
import os, signal, sys
from ops.anonymize.policy import DEFAULT_POLICY, load_policy
from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.output import Reporter

class KillAfterComments(Reporter):
    def line(self, text=""):
        if text.startswith("✅ comments"):
            os.kill(os.getpid(), signal.SIGKILL)

backup(Settings(database_url=sys.argv[1], backup_dir=sys.argv[2], app_env="test"),
       report=KillAfterComments(quiet=True))
"""


@pytest.mark.faults
def test_kill_9_mid_upload_leaves_no_backup_and_an_abortable_upload(db_url: str, conn,
                                                                    cloud_backend: Backend):
    insert_sample(conn)
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) SELECT 100 + g, 1, 10, "
                 "repeat(md5(g::text), 20) FROM generate_series(1, 40000) g")
    done = subprocess.run([sys.executable, "-c", _KILLED_BACKUP, db_url,
                           cloud_backend.location], env=child_env(), cwd=PROJECT_ROOT,
                          capture_output=True, timeout=180)
    assert done.returncode == -signal.SIGKILL, done.stderr
    store = open_store(cloud_backend.location)
    assert Archive(store).backups() == []
    assert Archive(store).latest() is None
    unfinished = store.incomplete_uploads()
    assert [u.name for u in unfinished] and all(
        u.name.startswith("backup-") for u in unfinished)
    assert all(u.recorded is not None for u in unfinished)  # this tool's own uploads
    # old enough by both clocks: the server's (moto's says 2010) and the tool's own record
    a_day_later = max(max(u.started, u.recorded) for u in unfinished) + timedelta(days=1,
                                                                                minutes=1)
    pruned = prune(Archive(store), keep=10, yes=True, now=a_day_later)
    assert sorted(pruned.stale_temp_files) == sorted(u.name for u in unfinished)
    assert store.incomplete_uploads() == []


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["s3", "gs", "az"])
def test_the_server_stopped_mid_upload_or_mid_restore_is_one_line_and_changes_nothing(
        db_url: str, conn, kind: str, monkeypatch: pytest.MonkeyPatch):
    from ops.backup.storage import azure, gcs

    for module in (gcs, azure):
        monkeypatch.setattr(module, "RETRY_SECONDS", 1)
    server = start_server(kind)
    try:
        use_server_env(monkeypatch, server)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        insert_sample(conn)
        conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) SELECT 100 + g, 1, "
                     "10, repeat(md5(g::text), 20) FROM generate_series(1, 60000) g")
        settings = Settings(database_url=db_url, backup_dir=server.location("stop"),
                            app_env="test")
        good = backup(settings)
        before = table_hashes(conn)

        class StopServerAt:  # a Reporter stopping the server once rows are flowing
            quiet = True

            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def line(self, text: str = "") -> None:
                if text.startswith(self.prefix):
                    server.process.send_signal(signal.SIGKILL)
                    server.process.wait(10)
                    time.sleep(0.2)

            def warn(self, text: str) -> None:
                pass

            def progress(self, description: str, total: int | None):
                from contextlib import nullcontext
                return nullcontext(lambda n=1: self.line(description))

        with pytest.raises(OpsError) as caught:  # mid-download: a restore downloads first
            restore(settings, good.name, safety_backup=False,
                    report=StopServerAt("⬇️"))  # type: ignore[arg-type]
        assert "\n" not in caught.value.message
        assert table_hashes(conn) == before
    finally:
        server.stop()
    server = start_server(kind)
    try:
        use_server_env(monkeypatch, server)
        settings = Settings(database_url=db_url, backup_dir=server.location("stop2"),
                            app_env="test")
        with pytest.raises(OpsError) as caught:
            backup(settings, report=StopServerAt("✅ tasks"))  # type: ignore[arg-type]
        assert "\n" not in caught.value.message
    finally:
        server.stop()


@pytest.mark.parametrize("location, message", [
    ("s4://bucket/x", "unknown storage scheme s4://"),
    ("s3:/bucket/x", "looks like a storage URL"),
])
def test_a_typo_in_the_scheme_is_one_line(run_cli, location: str, message: str):
    done = run_cli("backups", env={"BACKUP_DIR": location})
    assert done.returncode == 1 and message in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("❌")]) == 1


@pytest.mark.security
def test_wrong_credentials_and_a_missing_bucket_are_one_line_each(
        run_cli, cloud_backend: Backend):
    server = cloud_backend.server
    assert server is not None
    missing = run_cli("backups", env={**server.env,
                                      "BACKUP_DIR": f"{cloud_backend.kind}://no-such-bucket/x"})
    assert missing.returncode == 1 and "no-such-bucket" in missing.stderr
    if cloud_backend.kind == "s3":
        secret = "wrong-secret-wrong-secret"
        wrong = run_cli("backups", env={**server.env, "BACKUP_DIR": cloud_backend.location,
                                        "AWS_SECRET_ACCESS_KEY": secret})
        assert wrong.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in wrong.stderr
        assert secret not in wrong.stdout + wrong.stderr


def test_status_names_the_latest_backup_in_a_bucket(run_cli, conn, cloud_backend: Backend):
    insert_sample(conn)
    assert cloud_backend.server is not None
    env = {**cloud_backend.server.env, "BACKUP_DIR": cloud_backend.location}
    made = run_cli("backup", "--json", env=env)
    assert made.returncode == 0, made.stderr
    status = run_cli("status", env=env)
    assert "💾 Latest backup: backup-" in status.stdout


def test_output_and_restore_take_object_urls(db_url: str, conn, cloud_backend: Backend,
                                            settings: Settings):
    insert_sample(conn)
    before = table_hashes(conn)
    url = f"{cloud_backend.location}/nightly.json.gz"
    made = backup(settings, output=url)
    assert made.compressed and made.location == url
    with pytest.raises(OpsError, match="already exists"):
        backup(settings, output=url)
    conn.execute("DELETE FROM comments")
    restore(settings, url, safety_backup=False)
    assert table_hashes(conn) == before


def test_encryption_from_the_command_line(run_cli, conn, keys, backup_dir: Path):
    public, identity = keys
    insert_sample(conn)
    made = run_cli("backup", "--compress", "--encrypt-to", public, "--json")
    assert made.returncode == 0, made.stderr
    listing = run_cli("backups").stdout
    assert "🔒" in listing and "encrypted" in listing
    # without the identity: the stored bytes against the sidecar, and a word on the rest
    stored = run_cli("verify")
    assert stored.returncode == 0 and "against its sidecar" in stored.stdout
    assert "BACKUP_IDENTITY_FILE" in stored.stdout and "Traceback" not in stored.stderr
    assert run_cli("verify", "--identity", str(identity)).returncode == 0
    from_env = run_cli("restore", "latest", "--no-safety-backup",
                       env={"BACKUP_IDENTITY_FILE": str(identity)})
    assert from_env.returncode == 0, from_env.stderr
    misnamed = run_cli("backup", "--output", str(backup_dir / "x.json"), "--encrypt-to", public)
    assert misnamed.returncode == 2 and ".age" in misnamed.stderr
