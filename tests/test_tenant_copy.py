"""`copy --tenant --to`: one tenant into another database whose ids overlap: fresh ids, every
reference rewritten, public ids kept unless taken, the name a clear error unless --rename;
the source only read; the target's production marker guards it."""

from __future__ import annotations

import json

import psycopg
import pytest
from support.restore import insert_sample, table_hashes
from support.tenants import (
    GLOBEX,
    insert_two_tenants,
    sync_sequences,
    tenant_counts,
    tenant_hashes,
)

from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.restore.checks import validate_foreign_keys
from ops.restore.tenant import copy_tenant

PUBLIC_IDS = ("epics", "features", "tasks", "tickets")


@pytest.fixture
def source(conn: psycopg.Connection) -> dict:
    insert_two_tenants(conn)
    return table_hashes(conn)


def contents(conn: psycopg.Connection, tenant_id: int) -> dict[str, list]:
    """The tenant's rows without ids (sorted): what a copy must carry over."""
    return {name: sorted(rows, key=repr) for name, rows in {
        "tenant": conn.execute("SELECT plan, settings::text FROM tenants WHERE id = %s",
                               (tenant_id,)).fetchall(),
        "tasks": conn.execute(
            "SELECT t.title, p.title, t.estimate_minutes, t.metadata::text, u.email "
            "FROM tasks t LEFT JOIN tasks p ON p.id = t.parent_task_id "
            "LEFT JOIN users u ON u.id = t.assignee_id WHERE t.tenant_id = %s ORDER BY 1, 2",
            (tenant_id,)).fetchall(),
        "item_tags": conn.execute(
            "SELECT g.name, coalesce(t.title, e.title) FROM item_tags i JOIN tags g "
            "ON g.id = i.tag_id LEFT JOIN tasks t ON t.id = i.task_id LEFT JOIN epics e "
            "ON e.id = i.epic_id WHERE g.tenant_id = %s ORDER BY 1, 2", (tenant_id,)).fetchall(),
        "team_members": conn.execute(
            "SELECT m.role, u.email FROM team_members m JOIN teams t ON t.id = m.team_id "
            "JOIN users u ON u.id = m.user_id WHERE t.tenant_id = %s ORDER BY 2",
            (tenant_id,)).fetchall(),
    }.items()}


def public_ids(conn: psycopg.Connection, tenant_id: int) -> set:
    return {row[0] for table in PUBLIC_IDS for row in conn.execute(
        f"SELECT public_id FROM {table} WHERE tenant_id = %s", (tenant_id,))}


def test_copy_into_a_database_whose_ids_overlap(settings: Settings, conn, source: dict,
                                                other_db_url: str):
    with psycopg.connect(other_db_url, autocommit=True) as target:
        insert_sample(target)  # SysTech there too: ids 1, 2, 10, 20... are taken
        target.execute("INSERT INTO tenants (id, name, slug) VALUES (3, 'Someone else', 'globex')")
        sync_sequences(target)
        there = {t: tenant_hashes(target, t) for t in (1, 2, 3)}

        result = copy_tenant(settings, "Globex", other_db_url)

        new_id = result.copied_as.id
        assert new_id not in (1, 2, 3) and result.copied_as.name == "Globex"
        assert tenant_counts(target, new_id) == tenant_counts(conn, GLOBEX)
        assert contents(target, new_id) == contents(conn, GLOBEX)
        tables = discover_tables(target)
        validate_foreign_keys(target, tables, {t.name for t in tables})
        assert {t: tenant_hashes(target, t) for t in (1, 2, 3)} == there  # untouched
        assert public_ids(target, new_id) == public_ids(conn, GLOBEX)  # none was taken
        assert result.public_ids_regenerated == {}
        # its slug was taken there by another tenant: the next free one
        assert slug(target, new_id) == "globex-2" and slug(target, 3) == "globex"
    assert table_hashes(conn) == source  # the source is only read


def slug(conn: psycopg.Connection, tenant_id: int) -> str:
    return conn.execute("SELECT slug FROM tenants WHERE id = %s", (tenant_id,)).fetchone()[0]


def test_copy_regenerates_taken_public_ids_and_needs_rename_for_a_taken_name(
        run_cli, settings: Settings, conn, source: dict, other_db_url: str):
    with psycopg.connect(other_db_url, autocommit=True) as target:
        insert_two_tenants(target)  # the same data: every id and name is taken
        there = table_hashes(target)
        held = {t: tenant_hashes(target, t) for t in (1, 2, 3)}

        taken = run_cli("copy", "--tenant", "Globex", "--to", other_db_url)
        assert taken.returncode == 1
        assert taken.stderr.splitlines() == [
            "❌ a tenant named 'Globex' already exists here; nothing was changed",
            "💡 Give the tenant another name: "
            "`tasklets-db copy --tenant Globex --to URL --rename NEW`."]
        assert table_hashes(target) == there

        # (the test server trusts every login: the password only shows what output masks)
        with_password = other_db_url.replace("postgres@", "postgres:s3cret-pw@")
        done = run_cli("copy", "--tenant", "Globex", "--to", with_password, "--rename",
                       "Globex EU", "--json")
        assert done.returncode == 0, done.stderr
        assert "s3cret-pw" not in done.stdout + done.stderr
        result = json.loads(done.stdout)
        new_id = result["copied_as"]["id"]
        assert result["copied_as"]["name"] == "Globex EU"
        assert slug(target, new_id) == "globex-eu"  # made from the new name
        # the volume seed drew the same public ids there; the plain-SQL rows' are random
        taken = public_ids(conn, GLOBEX) & public_ids(target, GLOBEX)
        assert sum(result["public_ids_regenerated"].values()) == len(taken) > 100
        assert not public_ids(target, new_id) & public_ids(target, GLOBEX)
        assert tenant_counts(target, new_id) == tenant_counts(conn, GLOBEX)
        assert contents(target, new_id) == contents(conn, GLOBEX)
        assert {t: tenant_hashes(target, t) for t in (1, 2, 3)} == held
        assert result["target"] == other_db_url.replace("postgres@", "postgres:***@")
    assert table_hashes(conn) == source


def test_copy_refuses_a_production_target_and_unknown_tenants(
        run_cli, settings: Settings, conn, source: dict, other_db_url: str):
    with psycopg.connect(other_db_url, autocommit=True) as target:
        target.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
        there = table_hashes(target)

        refused = run_cli("copy", "--tenant", "Globex", "--to", other_db_url)
        assert refused.returncode == 2
        assert refused.stderr.startswith("❌ refusing to copy a tenant into a production "
                                         "database (the database's environment marker says "
                                         "production)")
        unknown = run_cli("copy", "--tenant", "Initech", "--to", other_db_url)
        assert unknown.returncode == 1
        assert unknown.stderr.startswith("❌ no tenant 'Initech' in the database")
        assert table_hashes(target) == there

        # APP_ENV describes the source (DATABASE_URL), which copy only reads
        allowed = run_cli("copy", "--tenant", "Globex", "--to", other_db_url,
                          "--allow-production", env={"APP_ENV": "production"})
        assert allowed.returncode == 0, allowed.stderr
    assert table_hashes(conn) == source
    assert not [p for p in settings.backup_dir.iterdir()]  # the temporary backup is gone
