"""Faults during a tenant restore or reset: kill -9 at every stage leaves the database exactly
as it was (ordered per-table hashes of every tenant), and the command works afterwards."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from support.faults import (
    check_unchanged,
    fingerprint,
    run_killed_at,
    wait_for_tool_backends_to_end,
)
from support.tenants import GLOBEX, change_both_tenants, insert_two_tenants, tenant_hashes

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.config import Settings
from ops.restore.tenant import reset_tenant, restore_tenant

pytestmark = pytest.mark.faults

EXTRA_COMMENTS = 12_000  # more than one progress step, so a kill can land mid-COPY


@pytest.fixture
def prepared(settings: Settings, conn: psycopg.Connection) -> tuple[Path, dict]:
    """A backup of Globex in BACKUP_DIR, then both tenants changed: (the backup, Globex's
    rows in it)."""
    insert_two_tenants(conn)
    conn.execute("INSERT INTO comments (tenant_id, task_id, body) "
                 "SELECT 3, 15, 'comment ' || g FROM generate_series(1, %s) g",
                 (EXTRA_COMMENTS,))
    good = backup(settings, tenant="Globex").path
    globex = tenant_hashes(conn, GLOBEX)
    change_both_tenants(conn)
    return good, globex


@pytest.mark.parametrize("trigger", [
    "progress:📥 comments:1",  # staging, in the middle of a COPY
    "line:🔒 Locking",  # staged, about to lock the tenant
    "line:💾 Safety backup",  # locked, safety backup written, nothing deleted yet
    "line:🗑️  Deleted",  # the tenant's rows deleted
    "line:✅ tenants",  # the first table loaded
    "line:⚙️  Re-enabling",  # everything loaded, references not checked yet
    "line:🔗 Foreign keys verified",  # checked, about to commit
])
def test_kill_9_mid_tenant_restore_leaves_the_database_unchanged(
        settings: Settings, conn, prepared, trigger: str, fault_ledger: list[dict]):
    good, globex = prepared
    before = fingerprint(settings.database_url)

    run_killed_at(settings.database_url, str(settings.backup_dir), trigger,
                  "from ops.restore.tenant import restore_tenant; "
                  f"restore_tenant(settings, {str(good)!r}, 'Globex', report=R)")
    wait_for_tool_backends_to_end(settings.database_url)

    check_unchanged(fault_ledger, f"restore --tenant kill -9 at {trigger}", before,
                    fingerprint(settings.database_url))
    # the killed restore left no backup in the listing but the tenant's (and its safety one)
    assert [b.path for b in Archive.at(settings.backup_dir).backups(include_safety=False)] \
        == [good]
    restore_tenant(settings, good, "Globex", safety_backup=False)
    assert tenant_hashes(conn, GLOBEX) == globex


@pytest.mark.parametrize("trigger", ["line:⚠️  WARNING", "line:🗑️  Deleting",
                                     "line:✅ task_dependencies"])
def test_kill_9_mid_tenant_reset_leaves_the_database_unchanged(
        settings: Settings, conn, trigger: str, fault_ledger: list[dict]):
    insert_two_tenants(conn)
    before = fingerprint(settings.database_url)

    run_killed_at(settings.database_url, str(settings.backup_dir), trigger,
                  "from ops.restore.tenant import reset_tenant; "
                  "reset_tenant(settings, 'Globex', confirm=True, report=R)")
    wait_for_tool_backends_to_end(settings.database_url)

    check_unchanged(fault_ledger, f"reset --tenant kill -9 at {trigger}", before,
                    fingerprint(settings.database_url))
    reset_tenant(settings, "Globex", confirm=True)
    assert sum(rows for rows, _ in tenant_hashes(conn, GLOBEX).values()) == 0
