"""A tenant backup names its tenant (id, name, slug) and the database it came from, and
`restore --tenant` checks both against the live database: it never renames or overwrites
another live tenant; a mismatch is one line naming both tenants, unless the operator names
the target (--into-tenant) or loads the tenant as new (--new-ids)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from support.tenants import GLOBEX, SYSTECH, insert_two_tenants, tenant_hashes

from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.core.config import Settings
from ops.core.db import database_identity
from ops.core.errors import OpsError
from ops.restore.tenant import copy_tenant, reset_tenant, restore_tenant


@pytest.fixture
def two_tenants(conn: psycopg.Connection) -> None:
    insert_two_tenants(conn, volume=0)


@pytest.fixture
def elsewhere(settings: Settings, two_tenants: None, other_db_url: str,
              tmp_path: Path) -> Path:
    """The issue's scenario: Globex copied into another database (where it gets id 1, SysTech's
    id here) and backed up there."""
    copied = copy_tenant(settings, "Globex", other_db_url)
    assert copied.copied_as is not None and copied.copied_as.id == SYSTECH
    there = Settings(database_url=other_db_url, backup_dir=tmp_path, app_env="test")
    return backup(there, output=tmp_path / "globex-elsewhere.json", tenant="Globex",
                  encrypt_to="").path


def test_tenant_backup_meta_names_tenant_and_source(settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex", encrypt_to="")
    meta = read_meta(made.ref)
    assert meta["tenant"] == {"id": GLOBEX, "name": "Globex", "slug": "globex"}
    assert meta["source"] == database_identity(conn).as_meta()


def test_restore_of_another_databases_tenant_never_overwrites_a_live_one(
        settings: Settings, conn, elsewhere: Path):
    reset_tenant(settings, "Globex", confirm=True)
    systech = tenant_hashes(conn, SYSTECH)

    with pytest.raises(OpsError) as refused:
        restore_tenant(settings, elsewhere, "Globex")

    message = refused.value.message
    assert "Globex (id 1)" in message and "SysTech (id 1)" in message
    assert "nothing was changed" in message and "--new-ids" in (refused.value.hint or "")
    assert tenant_hashes(conn, SYSTECH) == systech
    assert conn.execute("SELECT name FROM tenants WHERE id = 1").fetchone()[0] == "SysTech"


def test_restore_of_another_databases_tenant_as_new(settings: Settings, conn,
                                                    elsewhere: Path):
    reset_tenant(settings, "Globex", confirm=True)
    systech = tenant_hashes(conn, SYSTECH)

    result = restore_tenant(settings, elsewhere, "Globex", new_ids=True)

    assert result.new_tenant_id not in (SYSTECH, 2)
    assert conn.execute("SELECT name, slug FROM tenants WHERE id = %s",
                        (result.new_tenant_id,)).fetchone() == ("Globex", "globex")
    assert tenant_hashes(conn, SYSTECH) == systech
