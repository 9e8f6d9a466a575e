"""`reset --tenant`: one tenant emptied (its row too unless --keep-tenant), every other tenant
exactly as it was; the same guards as reset."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from support.restore import table_hashes
from support.tenants import GLOBEX, SYSTECH, insert_two_tenants, tenant_counts, tenant_hashes

from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.tenant import reset_tenant


@pytest.fixture
def two_tenants(conn: psycopg.Connection) -> None:
    insert_two_tenants(conn)


@pytest.mark.parametrize("keep_tenant", [False, True])
def test_reset_tenant_empties_that_tenant_only(settings: Settings, conn, two_tenants,
                                               keep_tenant: bool):
    systech, empty = tenant_hashes(conn, SYSTECH), tenant_hashes(conn, 2)
    held = tenant_counts(conn, GLOBEX)

    result = reset_tenant(settings, "Globex", confirm=True, keep_tenant=keep_tenant)

    remaining = tenant_counts(conn, GLOBEX)
    assert remaining == {name: int(keep_tenant and name == "tenants") for name in held}
    assert tenant_hashes(conn, SYSTECH) == systech and tenant_hashes(conn, 2) == empty
    assert result.tables == {name: rows - remaining[name] for name, rows in held.items()}
    assert result.kept_tenant is keep_tenant


def test_cli_reset_tenant_needs_confirm_and_shows_a_dry_run(run_cli, conn, two_tenants):
    before = table_hashes(conn)
    refused = run_cli("reset", "--tenant", "Globex")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == (
        "❌ reset --tenant deletes every row of tenant 'Globex'; refusing without --confirm "
        "(nothing was changed)")

    dry = run_cli("reset", "--tenant", "3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    counts = tenant_counts(conn, GLOBEX)
    assert dry.stdout.splitlines()[0] == (f"🔍 Dry run: reset of tenant Globex (id 3) would "
                                          f"delete {sum(counts.values())} rows:")
    assert f"   {'tasks':<17}  {counts['tasks']:>10}\n" in dry.stdout
    assert table_hashes(conn) == before

    done = run_cli("reset", "--tenant", "Globex", "--confirm", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables"] == counts
    assert sum(tenant_counts(conn, GLOBEX).values()) == 0


def test_reset_tenant_bad_input_and_guards(run_cli, conn, two_tenants):
    before = table_hashes(conn)
    unknown = run_cli("reset", "--tenant", "Initech", "--confirm")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines()[0] == "❌ no tenant 'Initech' in the database"
    keep = run_cli("reset", "--keep-tenant", "--confirm")
    assert keep.returncode == 2 and "--keep-tenant goes with --tenant" in keep.stderr

    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    refused = run_cli("reset", "--tenant", "Globex", "--confirm")
    assert refused.returncode == 2
    assert refused.stderr.startswith("❌ refusing to reset a tenant of a production database")
    assert table_hashes(conn) == before
    allowed = run_cli("reset", "--tenant", "Globex", "--confirm", "--allow-production")
    assert allowed.returncode == 0, allowed.stderr


def test_reset_tenant_keeps_no_row_of_another_tenant_dangling(settings: Settings, conn,
                                                             two_tenants):
    conn.execute("UPDATE tasks SET assignee_id = 3 WHERE id = 10")  # SysTech task, Globex user
    before = table_hashes(conn)

    with pytest.raises(OpsError, match=r"table tasks row id=10 \(assignee_id=3\) references "
                                       r"a users row of tenant Globex \(id 3\) that would "
                                       r"be gone"):
        reset_tenant(settings, "Globex", confirm=True)
    assert table_hashes(conn) == before


def test_a_table_owner_resets_a_tenant(owner_db_url: str, backup_dir: Path):
    settings = Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")
    with psycopg.connect(owner_db_url, autocommit=True) as conn:
        insert_two_tenants(conn)
        systech = tenant_hashes(conn, SYSTECH)

        reset_tenant(settings, "Globex", confirm=True)

        assert sum(tenant_counts(conn, GLOBEX).values()) == 0
        assert tenant_hashes(conn, SYSTECH) == systech
