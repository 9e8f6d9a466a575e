"""`backup --tenant`: only that tenant's rows, same format, one snapshot, meta records the
tenant; `backups` shows it; restored into an empty database it is exactly that tenant; a full
restore refuses such a file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from support.backup import load
from support.restore import table_hashes
from support.tenants import (
    GLOBEX,
    SYSTECH,
    UNPLACEABLE_SQL,
    insert_two_tenants,
    tenant_counts,
    tenant_hashes,
)

import ops.backup.create as backup_module
from ops.anonymize.policy import DEFAULT_POLICY, load_policy
from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.core.catalog import discover_tables, row_counts
from ops.core.config import Settings
from ops.core.errors import OpsError, UsageError
from ops.core.tenancy import Tenant
from ops.restore.apply import restore
from ops.restore.tenant import restore_tenant


@pytest.fixture
def two_tenants(conn: psycopg.Connection) -> None:
    insert_two_tenants(conn)


def test_backup_tenant_holds_only_that_tenants_rows(settings: Settings, conn, two_tenants):
    result = backup(settings, tenant="Globex")

    data = load(result.path)
    tables = data["tables"]
    assert list(tables) == [t.name for t in discover_tables(conn)]  # every table, same order
    assert {name: len(rows) for name, rows in tables.items()} == tenant_counts(conn, GLOBEX)
    assert [row["id"] for row in tables["tenants"]] == [GLOBEX]
    for name, rows in tables.items():
        if name not in ("tenants", "client_products", "item_tags", "team_members"):
            assert {row["tenantId"] for row in rows} <= {GLOBEX}, name
    ids = {name: {row.get("id") for row in rows} for name, rows in tables.items()}
    assert {row["clientId"] for row in tables["client_products"]} <= ids["clients"]
    assert {row["tagId"] for row in tables["item_tags"]} <= ids["tags"]
    assert {row["teamId"] for row in tables["team_members"]} <= ids["teams"]
    assert 2 in ids["teams"] and 1 not in ids["teams"]  # its own, not SysTech's
    meta = data["meta"]
    assert meta["tenant"] == {"id": GLOBEX, "name": "Globex", "slug": "globex"}
    assert meta["partial"] is None and meta["totalRows"] == result.total_rows
    assert result.tenant == Tenant(GLOBEX, "Globex")


@pytest.mark.parametrize("ref", ["Globex", "3"])
def test_restoring_a_tenant_backup_into_an_empty_database_gives_exactly_that_tenant(
        settings: Settings, conn, two_tenants, other_db_url: str, ref: str):
    made = backup(settings, tenant=ref)

    target = settings.with_url(other_db_url)
    result = restore_tenant(target, made.path, ref)

    with psycopg.connect(other_db_url) as other:
        assert tenant_hashes(other, GLOBEX) == tenant_hashes(conn, GLOBEX)
        assert row_counts(other, discover_tables(other)) == tenant_counts(conn, GLOBEX)
    assert result.tenant == Tenant(GLOBEX, "Globex") and result.total_deleted == 0
    assert result.safety_backup is None  # the tenant was not there: nothing replaced


def test_compressed_and_parallel_tenant_backups_hold_the_same_rows(
        settings: Settings, conn, two_tenants, monkeypatch):
    plain = backup(settings, tenant="Globex", jobs=1)
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)  # several streams here too
    packed = backup(settings, tenant="Globex", compression="zstd", jobs=3)

    assert packed.path.name.endswith(".json.zst")
    assert packed.sha256 == plain.sha256 and packed.tables == plain.tables
    assert read_meta(packed.path)["tenant"] == {"id": GLOBEX, "name": "Globex", "slug": "globex"}


def test_backups_lists_the_tenant_of_a_tenant_backup(run_cli, settings, conn, two_tenants):
    backup(settings)
    backup(settings, tenant="Globex")

    listed = run_cli("backups")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "backup-" in line]
    assert rows[0].endswith("complete (not verified), tenant Globex (id 3)")
    assert "tenant" not in rows[1]
    as_json = json.loads(run_cli("backups", "--json").stdout)
    assert [b["tenant"] for b in as_json] == ["Globex (id 3)", None]


def test_a_full_restore_refuses_a_tenant_backup(run_cli, settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    before = table_hashes(conn)

    done = run_cli("restore", made.path.name)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "❌ this is a backup of one tenant, Globex (id 3): restoring it in full would empty "
        "every other tenant; nothing was changed",
        "💡 Restore that tenant alone (`tasklets-db restore FILE --tenant 3`), or pick a full "
        "backup."]
    with pytest.raises(UsageError):
        restore(settings, made.path, dry_run=True)
    assert table_hashes(conn) == before


def test_backup_tenant_bad_input_is_one_line(run_cli, settings, conn, two_tenants):
    unknown = run_cli("backup", "--tenant", "Initech")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        "❌ no tenant 'Initech' in the database",
        '💡 Tenants there: SysTech (id 1), Other "quoted" tenant (id 2), Globex (id 3).']
    mixed = run_cli("backup", "--tenant", "Globex", "--tables", "tasks")
    assert mixed.returncode == 2 and "does not combine with --tables" in mixed.stderr
    assert not list(settings.backup_dir.iterdir())
    with pytest.raises(OpsError, match="no tenant '99'"):
        backup(settings, tenant="99")


def test_cli_backup_tenant_prints_the_tenant_and_json(run_cli, settings: Settings, conn,
                                                      two_tenants, tmp_path: Path):
    done = run_cli("backup", "--tenant", "SysTech")
    assert done.returncode == 0, done.stderr
    assert "🏢 Tenant: SysTech (id 1) — only its rows are backed up" in done.stdout
    as_json = json.loads(run_cli("backup", "--tenant", "1", "--json").stdout)
    assert as_json["tenant"] == {"id": SYSTECH, "name": "SysTech", "slug": "systech"}
    assert as_json["tables"] == tenant_counts(conn, SYSTECH)


def test_backup_tenant_with_a_table_no_tenant_owns_fails_in_one_line(run_cli, settings, conn,
                                                                     two_tenants):
    conn.execute(UNPLACEABLE_SQL)

    done = run_cli("backup", "--tenant", "Globex")

    assert done.returncode == 1
    assert done.stderr.startswith("❌ cannot tell which tenant the rows of audit_log, reminders")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 2
    assert not list(settings.backup_dir.iterdir())
    backup(settings)  # a whole-database backup does not need to place rows


def test_an_anonymized_tenant_backup_holds_that_tenant_with_nobodys_data(
        settings: Settings, conn, two_tenants):
    salted = replace(settings, anonymize_salt="a-salt-for-the-tenant-test")
    result = backup(salted, tenant="Globex", anonymize=load_policy(DEFAULT_POLICY))

    data = load(result.path)
    assert data["meta"]["tenant"] == {"id": GLOBEX, "name": "Globex", "slug": "globex"}
    assert data["meta"]["anonymized"] is True
    assert {name: len(rows) for name, rows in data["tables"].items()} == tenant_counts(
        conn, GLOBEX)
    raw = result.path.read_bytes()
    for known in (b"hank@globex.test", b"peter@initech.test", b"Initech", b"Hooli"):
        assert known not in raw
