"""A tenant backup names its tenant (id, name, slug) and the database it came from, and
`restore --tenant` checks both against the live database: it never renames or overwrites
another live tenant; a mismatch is one line naming both tenants, unless the operator names
the target (--into-tenant) or loads the tenant as new (--new-ids)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from support.tenants import (
    GLOBEX,
    SYSTECH,
    insert_two_tenants,
    tenant_counts,
    tenant_hashes,
)

from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.core.db import database_identity
from ops.core.errors import OpsError, Refused
from ops.restore.apply import restore
from ops.restore.checks import validate_foreign_keys
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


def test_a_named_target_with_another_id_takes_the_rows_under_fresh_ids(
        settings: Settings, conn, elsewhere: Path):
    """Globex (id 3 here, id 1 in the backup's database) replaced in one transaction."""
    systech = tenant_hashes(conn, SYSTECH)
    before = conn.execute("SELECT max(id) FROM tasks").fetchone()[0]
    wanted = tenant_counts(conn, GLOBEX)
    conn.execute("UPDATE tasks SET title = 'changed' WHERE tenant_id = 3")

    result = restore_tenant(settings, elsewhere, "Globex", into="globex")

    assert result.into_tenant is not None and result.into_tenant.id == GLOBEX
    assert result.public_ids_regenerated == {}  # its own, about to be replaced: not taken
    assert tenant_counts(conn, GLOBEX) == wanted
    assert conn.execute("SELECT count(*) FROM tasks WHERE tenant_id = 3 AND "
                        "title = 'changed'").fetchone()[0] == 0
    assert conn.execute("SELECT min(id) FROM tasks WHERE tenant_id = 3").fetchone()[0] > before
    assert tenant_hashes(conn, SYSTECH) == systech
    assert read_meta(Path(result.safety_backup))["tenant"]["id"] == GLOBEX
    every_reference_holds(conn)


def test_a_tenant_recreated_under_another_id_is_not_replaced(settings: Settings, conn,
                                                             two_tenants):
    made = backup(settings, tenant="Globex", encrypt_to="")
    reset_tenant(settings, "Globex", confirm=True)
    again = conn.execute("INSERT INTO tenants (name, slug) VALUES ('Globex', 'globex') "
                         "RETURNING id").fetchone()[0]

    with pytest.raises(Refused, match=rf"holds Globex \(id 3\) from this database, but here "
                                      rf"that tenant is Globex \(id {again}\)"):
        restore_tenant(settings, made.path, "Globex")
    assert conn.execute("SELECT count(*) FROM tenants WHERE id = 3").fetchone()[0] == 0


def test_an_older_backup_replaces_a_live_tenant_only_when_named(settings: Settings, conn,
                                                                two_tenants, tmp_path: Path):
    made = backup(settings, output=tmp_path / "old.json", tenant="Globex", encrypt_to="")
    text = made.path.read_text()
    made.path.write_text(re.sub(r'"source": \{[^}]*\}, ', "", text))  # as before the change
    Path(f"{made.path}.sum").unlink(missing_ok=True)
    conn.execute("UPDATE tasks SET title = 'changed' WHERE id = 5")

    with pytest.raises(Refused) as refused:
        restore_tenant(settings, made.path, "Globex")
    assert "does not record which database Globex (id 3) came from" in refused.value.message
    assert "--into-tenant 3" in (refused.value.hint or "")
    assert conn.execute("SELECT title FROM tasks WHERE id = 5").fetchone()[0] == "changed"

    restore_tenant(settings, made.path, "Globex", into="globex")  # a name, slug or id
    assert conn.execute("SELECT title FROM tasks WHERE id = 5").fetchone()[0] == "Globex child"


def test_a_copy_of_the_database_elsewhere_takes_the_tenant_in_place(
        settings: Settings, conn, two_tenants, other_db_url: str, tmp_path: Path):
    """A staging database restored from production's backup: other database, same ids,
    same slug and name - the same tenant."""
    clone = Settings(database_url=other_db_url, backup_dir=tmp_path, app_env="test")
    restore(clone, backup(settings, encrypt_to="").ref, safety_backup=False)
    made = backup(settings, tenant="Globex", encrypt_to="")
    with psycopg.connect(other_db_url, autocommit=True) as there:
        there.execute("UPDATE tasks SET title = 'changed' WHERE id = 5")

        restore_tenant(clone, made.ref, "Globex")

        assert tenant_hashes(there, GLOBEX) == tenant_hashes(conn, GLOBEX)


def test_cli_refusal_is_one_line_naming_both_tenants(run_cli, settings: Settings, conn,
                                                     elsewhere: Path):
    reset_tenant(settings, "Globex", confirm=True)
    done = run_cli("restore", str(elsewhere), "--tenant", "Globex")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error, hint = done.stderr.splitlines()
    assert error.startswith("❌ globex-elsewhere.json holds Globex (id 1) from another "
                            "database, but here id 1 is SysTech (id 1)")
    assert "--new-ids" in hint and "--into-tenant 1" in hint


def test_copy_refuses_this_same_database_through_another_host_alias(settings: Settings, conn,
                                                                    two_tenants):
    before = tenant_hashes(conn, GLOBEX)
    alias = settings.database_url.replace("@127.0.0.1:", "@localhost:")
    assert alias != settings.database_url

    with pytest.raises(Refused, match=r"--to .*localhost.* reaches this same database"):
        copy_tenant(settings, "Globex", alias, rename="Globex 2")
    assert tenant_hashes(conn, GLOBEX) == before
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 3


def test_an_explicit_target_is_replaced_and_its_safety_backup_undoes_it(
        settings: Settings, conn, elsewhere: Path):
    reset_tenant(settings, "Globex", confirm=True)
    systech = tenant_hashes(conn, SYSTECH)

    result = restore_tenant(settings, elsewhere, "Globex", into="systech")

    assert conn.execute("SELECT name FROM tenants WHERE id = 1").fetchone()[0] == "Globex"
    safety = Path(result.safety_backup)
    assert read_meta(safety)["tenant"] == {"id": 1, "name": "SysTech", "slug": "systech"}
    restore_tenant(settings, safety, "SysTech")  # same database, same id: renamed back
    assert tenant_hashes(conn, SYSTECH) == systech


def test_the_same_tenant_under_another_id_elsewhere_is_refused_naming_both(
        settings: Settings, conn, elsewhere: Path):
    """Globex is live here (id 3); the backup's Globex has id 1, SysTech's here."""
    before = {t: tenant_hashes(conn, t) for t in (SYSTECH, GLOBEX)}

    with pytest.raises(Refused) as refused:
        restore_tenant(settings, elsewhere, "Globex")

    assert refused.value.message.startswith(
        "globex-elsewhere.json holds Globex (id 1) from another database, but here that "
        "tenant is Globex (id 3): its rows would land under id 1, which is SysTech (id 1) "
        "here; nothing was changed")
    assert "`--into-tenant 3`" in (refused.value.hint or "")
    assert {t: tenant_hashes(conn, t) for t in (SYSTECH, GLOBEX)} == before


def every_reference_holds(conn: psycopg.Connection) -> None:
    tables = discover_tables(conn)
    validate_foreign_keys(conn, tables, {t.name for t in tables})
