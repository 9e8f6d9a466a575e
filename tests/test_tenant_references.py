"""Every foreign key of a restored or copied tenant row points inside the tenant: a row of
Globex referencing a row of SysTech is refused in one line naming the row and the reference,
and nothing changes - here or in the database copied into."""

from __future__ import annotations

import psycopg
import pytest
from support.restore import table_hashes
from support.tenants import insert_two_tenants

from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.tenant import copy_tenant, restore_tenant

# A Globex (id 3) row referencing a SysTech (id 1) row, and how the refusal names it.
CROSSINGS = {
    "comment on another tenant's task": (
        "INSERT INTO comments (id, tenant_id, task_id, body) VALUES (90, 3, 10, 'x')",
        "table comments row id=90: task_id=10 points to a tasks row outside tenant Globex "
        "(id 3) (id=10 is not one of its rows"),
    "tag on another tenant's task": (
        "INSERT INTO item_tags (id, tag_id, task_id) VALUES (90, 3, 10)",
        "table item_tags row id=90: task_id=10 points to a tasks row outside tenant Globex"),
    "another tenant's user in a team": (
        "INSERT INTO team_members (team_id, user_id) VALUES (2, 1)",
        "table team_members row team_id=2, user_id=1: user_id=1 points to a users row "
        "outside tenant Globex"),
    "licence for another tenant's product": (
        "INSERT INTO client_products (client_id, product_id) VALUES (3, 1)",
        "table client_products row client_id=3, product_id=1: product_id=1 points to a "
        "products row outside tenant Globex"),
    "dependency on another tenant's task": (
        "INSERT INTO task_dependencies (id, tenant_id, task_id, depends_on_task_id) "
        "VALUES (90, 3, 5, 10)",
        "table task_dependencies row id=90: depends_on_task_id=10 points to a tasks row "
        "outside tenant Globex"),
}


@pytest.fixture(params=list(CROSSINGS))
def crossing(request: pytest.FixtureRequest, conn: psycopg.Connection) -> str:
    """Two tenants, one Globex row referencing SysTech's; returns the expected refusal."""
    insert_two_tenants(conn, volume=0)
    statement, refusal = CROSSINGS[request.param]
    conn.execute(statement)
    return refusal


def test_restore_refuses_a_tenant_row_referencing_another_tenant(settings: Settings, conn,
                                                                 crossing: str):
    made = backup(settings, tenant="Globex", encrypt_to="")
    before = table_hashes(conn)

    with pytest.raises(OpsError) as refused:
        restore_tenant(settings, made.path, "Globex")

    assert refused.value.message.startswith(crossing)
    assert refused.value.message.endswith("nothing was changed")
    assert table_hashes(conn) == before


def test_copy_refuses_a_tenant_row_referencing_another_tenant(settings: Settings, conn,
                                                              crossing: str, other_db_url: str):
    with psycopg.connect(other_db_url, autocommit=True) as target:
        before = table_hashes(target)

        with pytest.raises(OpsError) as refused:
            copy_tenant(settings, "Globex", other_db_url)

        assert refused.value.message.startswith(crossing)
        assert table_hashes(target) == before


def test_restore_as_new_refuses_it_too(settings: Settings, conn, crossing: str):
    """With fresh ids a stale reference could land on a remapped row: checked before."""
    made = backup(settings, tenant="Globex", encrypt_to="")
    before = table_hashes(conn)

    with pytest.raises(OpsError, match="outside tenant Globex"):
        restore_tenant(settings, made.path, "Globex", new_ids=True, rename="Globex 2")
    assert table_hashes(conn) == before


def test_cli_refusal_is_one_line(run_cli, settings: Settings, conn):
    insert_two_tenants(conn, volume=0)
    conn.execute(CROSSINGS["comment on another tenant's task"][0])
    made = backup(settings, tenant="Globex", encrypt_to="")

    done = run_cli("restore", made.path.name, "--tenant", "Globex", "--dry-run")

    assert done.returncode == 1 and "Traceback" not in done.stderr
    error, hint = done.stderr.splitlines()
    assert error.startswith("❌ " + CROSSINGS["comment on another tenant's task"][1])
    assert "may reference only its own rows" in hint
