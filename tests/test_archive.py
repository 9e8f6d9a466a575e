"""The archive knows each backup's kind, completeness and verdicts, and implicit choices follow
them (#25 items 2, 12-15; #26): each test reproduces a finding of the review first."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519
from support.backup import add_tenants_and_clients

from ops.anonymize.policy import load_policy
from ops.backup import create as backup_module
from ops.backup.archive import ANONYMIZED, COMPLETE, FULL, INCOMPLETE, TENANT, UNKNOWN, Archive
from ops.backup.create import backup
from ops.backup.encryption import load_identities
from ops.backup.freshness import check_freshness
from ops.backup.prune import prune
from ops.backup.retention import RetentionPolicy
from ops.backup.storage import interface
from ops.backup.verdicts import BAD, VERIFIED
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore
from ops.restore.tenant import restore_tenant
from ops.schedule.cycle import CycleOptions, run_cycle
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Redactor

pytest_plugins = ["support.storage_servers"]


def archive(settings: Settings) -> Archive:
    return Archive.at(settings.backup_dir)


def flip_a_byte_in_the_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, Path]:
    """An age recipient and the identity file that decrypts for it."""
    identity = x25519.Identity.generate()
    path = tmp_path / "identity.txt"
    path.write_text(str(identity) + "\n")
    path.chmod(0o600)
    return str(identity.to_public()), path


# ---------------------------------------------------------------- #25 item 2: kinds


def test_latest_retention_check_and_metrics_consider_only_full_backups(
        settings: Settings, conn: psycopg.Connection, run_cli):
    """Reproduces: after backup, backup --tenant, backup --anonymize, `prune --keep 2 --yes`
    deleted the only full backup, `backups check` passed on the snapshot and `restore latest`
    restored it."""
    add_tenants_and_clients(conn)
    full = backup(settings)
    tenant = backup(settings, tenant="1")
    snapshot = backup(replace(settings, anonymize_salt="s" * 32), anonymize=load_policy())
    found = archive(settings)
    assert [found.facts(b).kind for b in found.backups()] == [ANONYMIZED, TENANT, FULL]

    pruned = run_cli("prune", "--keep", "2", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert full.path.exists() and tenant.path.exists() and snapshot.path.exists()

    assert check_freshness(archive(settings)).newest == full.name
    assert archive(settings).latest().name == full.name
    assert restore(settings, "latest", dry_run=True).source == str(full.path)
    metrics = BackupMetrics()
    metrics.seed(archive(settings))
    # the full one's rows, not the snapshot's
    assert metrics.registry.get_sample_value("tasklets_backup_last_rows") == full.total_rows


def test_prune_kind_prunes_the_kind_it_names(settings: Settings, conn: psycopg.Connection):
    add_tenants_and_clients(conn)
    full = backup(settings)
    old, new = backup(settings, tenant="1"), backup(settings, tenant="1")
    done = prune(archive(settings), keep=1, kinds=[TENANT], yes=True)
    assert done.delete == [old.name]
    assert full.path.exists() and new.path.exists() and not old.path.exists()


def test_a_full_restore_of_an_anonymized_snapshot_needs_allow_anonymized(
        settings: Settings, conn: psycopg.Connection, run_cli):
    add_tenants_and_clients(conn)
    snapshot = backup(replace(settings, anonymize_salt="s" * 32), anonymize=load_policy())
    emails = conn.execute("SELECT array_agg(email ORDER BY id) FROM clients").fetchone()[0]

    refused = run_cli("restore", snapshot.name, "--no-safety-backup")
    assert refused.returncode == 2  # refused: a usage the operator must confirm
    assert "anonymized snapshot" in refused.stderr and "--allow-anonymized" in refused.stderr
    assert conn.execute("SELECT array_agg(email ORDER BY id) FROM clients").fetchone()[0] \
        == emails

    done = run_cli("restore", snapshot.name, "--no-safety-backup", "--allow-anonymized")
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT array_agg(email ORDER BY id) FROM clients").fetchone()[0] \
        != emails


# ---------------------------------------------------------------- #25 item 12: encrypted


def test_a_truncated_encrypted_backup_newer_than_a_good_one_is_never_picked_or_counted(
        settings: Settings, conn: psycopg.Connection, keys, run_cli):
    """Reproduces: a truncated .age backup newer than a good one was listed 🔒, picked as
    latest, passed `backups check`, and `prune --keep 1 --yes` deleted the good one."""
    add_tenants_and_clients(conn)
    good = backup(settings)
    cut = backup(settings, encrypt_to=keys[0])
    cut.path.write_bytes(cut.path.read_bytes()[:-100])

    facts = archive(settings).facts(archive(settings).backups()[0])
    assert facts.kind == FULL and facts.completeness == INCOMPLETE
    assert archive(settings).latest().name == good.name
    assert check_freshness(archive(settings)).newest == good.name
    listing = run_cli("backups").stdout
    assert "incomplete" in next(line for line in listing.splitlines() if cut.name in line)

    assert run_cli("prune", "--keep", "1", "--yes").returncode == 0
    assert good.path.exists()


def test_a_bit_flipped_encrypted_backup_is_found_bad_without_its_identity(
        settings: Settings, conn: psycopg.Connection, keys, run_cli):
    add_tenants_and_clients(conn)
    good = backup(settings)
    flipped = backup(settings, encrypt_to=keys[0])
    flip_a_byte_in_the_middle(flipped.path)  # same length: only its hash tells

    done = run_cli("backups", "--verify")
    assert done.returncode == 1
    assert "sha256 mismatch" in done.stderr and flipped.name in done.stderr
    assert (settings.backup_dir / f"{flipped.name}.{BAD}").exists()
    assert (settings.backup_dir / f"{good.name}.{VERIFIED}").exists()
    assert archive(settings).latest().name == good.name


def test_an_old_encrypted_backup_without_a_sidecar_is_completeness_unknown_and_not_counted(
        settings: Settings, conn: psycopg.Connection, keys):
    add_tenants_and_clients(conn)
    good = backup(settings)
    old = backup(settings, encrypt_to=keys[0])
    (settings.backup_dir / f"{old.name}.sum").unlink()  # as an older version wrote it

    found = archive(settings)
    assert found.facts(found.backups()[0]).completeness == UNKNOWN
    assert found.latest().name == good.name
    done = prune(archive(settings), keep=1, yes=True)
    assert done.delete == [] and good.path.exists() and old.path.exists()
    # it still restores when named, with its identity
    assert restore(settings, old.path, identity=keys[1], dry_run=True).total_rows == \
        good.total_rows


# ---------------------------------------------------------------- #25 item 13: scheduler


def cycle(settings: Settings, **options) -> object:
    return run_cycle(settings, CycleOptions(**options), metrics=BackupMetrics(),
                     notifier=None, redact=Redactor(settings))


def test_an_encrypted_cycle_without_an_identity_verifies_the_stored_bytes(
        settings: Settings, conn: psycopg.Connection, keys):
    add_tenants_and_clients(conn)
    encrypted = replace(settings, backup_encrypt_to=keys[0])
    result = cycle(encrypted, policy=RetentionPolicy(last=1))
    assert result.result == "success", result.error
    assert result.verified == VERIFIED
    assert (settings.backup_dir / f"{result.backup}.{VERIFIED}").exists()


def test_retention_does_not_run_after_a_backup_it_could_not_verify(
        settings: Settings, conn: psycopg.Connection, keys, monkeypatch):
    """Reproduces: encrypted `schedule --once --keep-last 1` without an identity printed
    "Not verified", then retention deleted both verified plain backups."""
    add_tenants_and_clients(conn)
    plain = [cycle(settings) for _ in range(2)]
    assert all(r.verified == VERIFIED for r in plain)
    monkeypatch.setattr(backup_module, "write_sidecar", lambda ref, integrity: None)
    encrypted = replace(settings, backup_encrypt_to=keys[0])

    result = cycle(encrypted, policy=RetentionPolicy(last=1))

    assert result.result == "success" and result.verified.startswith("not verified")
    assert result.pruned == []
    assert all((settings.backup_dir / r.backup).exists() for r in plain)


# ---------------------------------------------------------------- #25 items 14, 15: verdicts


def test_latest_prefers_a_verified_backup_and_a_restore_records_what_it_finds_bad(
        settings: Settings, conn: psycopg.Connection, run_cli):
    """Reproduces: a bit flip with the meta line intact was listed ✅ complete and picked
    as latest (restore then refused it)."""
    add_tenants_and_clients(conn)
    verified = backup(settings)
    assert run_cli("verify", verified.name).returncode == 0
    flipped = backup(settings)
    lines = flipped.path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"Tenant", b"Tenent")  # a row edited, meta intact
    flipped.path.write_bytes(b"\n".join(lines))

    listing = run_cli("backups").stdout.splitlines()
    assert "complete (not verified)" in listing[1] and not listing[1].startswith("✅")
    assert listing[2].startswith("✅") and "verified" in listing[2]
    assert archive(settings).latest().name == verified.name
    assert restore(settings, "latest", dry_run=True).source == str(verified.path)

    refused = run_cli("restore", flipped.name, "--no-safety-backup")
    assert refused.returncode == 1 and "sha256" in refused.stderr
    assert json.loads((settings.backup_dir / f"{flipped.name}.{BAD}").read_text())["problem"]


def test_restore_latest_says_when_it_picks_an_unverified_backup(
        settings: Settings, conn: psycopg.Connection):
    add_tenants_and_clients(conn)
    backup(settings)
    result = restore(settings, "latest", dry_run=True)
    assert any("has not been verified" in note for note in result.notes)


def test_verify_exits_non_zero_and_records_the_verdict(settings: Settings,
                                                       conn: psycopg.Connection, run_cli):
    add_tenants_and_clients(conn)
    made = backup(settings)
    flip_a_byte_in_the_middle(made.path)
    done = run_cli("verify", made.name)
    assert done.returncode == 1
    assert (settings.backup_dir / f"{made.name}.{BAD}").exists()
    assert archive(settings).latest() is None


def test_every_new_backup_has_a_sidecar_with_its_stored_length_and_hash(
        settings: Settings, conn: psycopg.Connection, keys):
    import hashlib

    add_tenants_and_clients(conn)
    for made in (backup(settings, compression="zstd"), backup(settings, encrypt_to=keys[0])):
        sidecar = json.loads((settings.backup_dir / f"{made.name}.sum").read_text())
        data = made.path.read_bytes()
        assert sidecar["size"] == len(data) == made.size_bytes
        assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
        assert sidecar["kind"] == FULL and sidecar["rows"] == made.total_rows
        assert archive(settings).facts(
            next(b for b in archive(settings).backups() if b.name == made.name)
        ).completeness == COMPLETE


# ---------------------------------------------------------------- #26: one store per command


def test_a_scheduler_cycle_and_a_backups_listing_each_open_the_store_once(
        cloud_backend, settings: Settings, conn: psycopg.Connection, run_cli, monkeypatch):
    add_tenants_and_clients(conn)
    opened: list[str] = []
    init = interface.Store.__init__

    def counting(self, location: str) -> None:
        opened.append(type(self).__name__)
        init(self, location)

    monkeypatch.setattr(interface.Store, "__init__", counting)
    remote = replace(settings, backup_dir=cloud_backend.location)
    result = run_cycle(remote, CycleOptions(policy=RetentionPolicy(last=2)),
                       metrics=BackupMetrics(), notifier=None, redact=Redactor(remote))
    assert result.result == "success", result.error
    assert len(opened) == 1, opened  # was 4 on main

    opened.clear()
    cloud = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "STORAGE_", "AZURE_"))}
    listed = run_cli("backups", env={**cloud, "BACKUP_DIR": cloud_backend.location})
    assert listed.returncode == 0, listed.stderr
    assert result.backup in listed.stdout
    assert len(opened) == 1, opened  # was 2

    with pytest.raises(OpsError):  # and a bad location is still one line
        Archive.at("s3://")


# ---------------------------------------------------------------- #25 item 21: own uploads


def test_prune_aborts_only_uploads_this_tool_started_and_that_are_old_by_both_clocks(
        storage_servers, monkeypatch, tmp_path: Path):
    """Reproduces: moto dates every upload 2010, and `prune` aborted an upload 0.5 s old."""
    from datetime import UTC, datetime, timedelta

    from support.storage_servers import storage_backend

    backend = storage_backend("s3", storage_servers, monkeypatch, tmp_path)
    found = Archive.at(backend.location)
    running = found.store.open_writer("backup-2030-01-01T00-00-00-000Z.json")
    running.write(b"{")
    store = found.store
    foreign = store.client.create_multipart_upload(  # another program's, under our prefix
        Bucket=store.bucket, Key=store.key("backup-2030-01-02T00-00-00-000Z.json"))
    try:
        uploads = store.incomplete_uploads()
        assert len(uploads) == 2 and all(u.started.year == 2010 for u in uploads)  # moto

        done = prune(found, keep=10, yes=True)
        assert done.stale_temp_files == []
        assert len(store.incomplete_uploads()) == 2

        later = datetime.now(UTC) + timedelta(days=2)  # old by both clocks now: ours goes
        done = prune(found, keep=10, yes=True, now=later)
        assert done.stale_temp_files == [running.name]
        assert [u.handle for u in store.incomplete_uploads()] == [foreign["UploadId"]]
    finally:
        running.abort()
        store.client.abort_multipart_upload(Bucket=store.bucket, Key=foreign["Key"],
                                            UploadId=foreign["UploadId"])


def test_an_encrypted_tenant_backup_seals_its_tenant_name_and_latest_finds_it_by_name(
        settings: Settings, conn: psycopg.Connection, keys, run_cli):
    """The sidecar is read without the identity: an encrypted backup's tenant is there as its
    id, the name and slug sealed to the backup's recipients; restore (which has the
    identity) still finds the newest backup of a tenant by its name."""
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Umbrella Health', 'umbrella-hq')")
    tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'umbrella-hq'").fetchone()[0]
    made = backup(settings, tenant="Umbrella Health", encrypt_to=keys[0])

    sidecar = made.path.with_name(made.name + ".sum").read_bytes()
    assert b"Umbrella" not in sidecar and b"umbrella" not in sidecar
    assert archive(settings).facts(archive(settings).backups()[0]).tenant.keys() == {
        "id", "sealed"}
    listing = run_cli("backups").stdout
    assert f"tenant id {tenant_id} (name encrypted)" in listing and "Umbrella" not in listing
    identities = load_identities(keys[1])
    assert archive(settings).latest_for_tenant("Umbrella Health",
                                               identities=identities).name == made.name
    assert archive(settings).latest_for_tenant("umbrella-hq",
                                               identities=identities).name == made.name
    assert archive(settings).latest_for_tenant(str(tenant_id)).name == made.name  # by id
    assert archive(settings).latest_for_tenant("Umbrella Health") is None  # no identity
    other = x25519.Identity.generate()  # not the recipient: opens nothing
    assert archive(settings).latest_for_tenant("Umbrella Health", identities=[other]) is None
    sealed = replace(settings, backup_identity_file=keys[1])
    assert restore_tenant(sealed, "latest", "Umbrella Health", dry_run=True).source == str(
        made.path)
