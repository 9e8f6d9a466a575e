"""Tenant membership comes from the catalog: tenant_id, or a NOT NULL foreign-key path to a
table that has it; a table the rules cannot place is an error naming it."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from support.tenants import (
    GLOBEX,
    SYSTECH,
    UNPLACEABLE_SQL,
    insert_two_tenants,
    tenant_counts,
)

from ops.core.catalog import discover_tables, row_counts
from ops.core.errors import NotFound, OpsError
from ops.core.tenancy import Tenant, pick_tenant, tenant_scope


def test_the_schema_is_placed_by_tenant_id_and_foreign_key_paths(conn: psycopg.Connection):
    scope = tenant_scope(discover_tables(conn))

    paths = {name: (place.via.columns, place.via.ref_table)
             for name, place in scope.placements.items() if place.via is not None}
    assert paths == {"client_products": (("client_id",), "clients"),
                     "item_tags": (("tag_id",), "tags"),
                     "team_members": (("team_id",), "teams")}
    assert scope.placements["tenants"].depth == 0
    direct = {name for name, place in scope.placements.items() if place.depth == 1}
    assert direct == {"clients", "users", "teams", "products", "epics", "features", "tasks",
                      "task_dependencies", "tickets", "ideas", "tags", "comments"}
    assert {t.name for t in scope.anchors()} == {"tenants", "clients", "tags", "teams"}


def test_membership_predicates_select_exactly_each_tenants_rows(conn: psycopg.Connection):
    insert_two_tenants(conn)
    # Written out by hand for the paths, to check the derived predicates against.
    by_hand = {
        "client_products": "client_id IN (SELECT id FROM clients WHERE tenant_id = {t})",
        "item_tags": "tag_id IN (SELECT id FROM tags WHERE tenant_id = {t})",
        "team_members": "team_id IN (SELECT id FROM teams WHERE tenant_id = {t})",
    }
    systech, globex = tenant_counts(conn, SYSTECH), tenant_counts(conn, GLOBEX)
    empty = tenant_counts(conn, 2)
    for name, total in row_counts(conn, discover_tables(conn)).items():
        assert systech[name] + globex[name] + empty[name] == total, name
        where = by_hand.get(name, "id = {t}" if name == "tenants" else "tenant_id = {t}")
        for tenant, counts in ((SYSTECH, systech), (GLOBEX, globex)):
            expected = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                sql.Identifier(name), sql.SQL(where.format(t=tenant)))).fetchone()[0]
            assert counts[name] == expected, (name, tenant)
    assert globex["tasks"] > 100 and globex["item_tags"] > 100  # the volume seed's rows
    assert sum(empty.values()) == 1


def test_a_new_table_is_placed_through_its_foreign_key(conn: psycopg.Connection):
    conn.execute("CREATE TABLE task_notes (id bigint PRIMARY KEY, "
                 "task_id bigint NOT NULL REFERENCES tasks (id), note text)")
    scope = tenant_scope(discover_tables(conn))

    place = scope.placements["task_notes"]
    assert place.via is not None and place.via.ref_table == "tasks" and place.depth == 2


def test_a_table_the_rules_cannot_place_is_an_error_naming_it(conn: psycopg.Connection):
    conn.execute(UNPLACEABLE_SQL)

    with pytest.raises(OpsError, match=r"cannot tell which tenant the rows of audit_log, "
                                       r"reminders belong to: no tenant_id column and no NOT "
                                       r"NULL foreign key to a table that has one") as err:
        tenant_scope(discover_tables(conn))
    assert "tenant_id column" in (err.value.hint or "")


def test_a_tenant_is_named_by_id_or_by_name(conn: psycopg.Connection):
    tenants = [Tenant(1, "SysTech"), Tenant(2, "42"), Tenant(42, "Other")]
    assert pick_tenant(tenants, "42") == Tenant(42, "Other")  # an id first
    assert pick_tenant(tenants[:2], "42") == Tenant(2, "42")  # then a name
    assert pick_tenant(tenants, "SysTech") == Tenant(1, "SysTech")
    assert pick_tenant(tenants, "systech") is None

    insert_two_tenants(conn, volume=0)
    scope = tenant_scope(discover_tables(conn))
    assert scope.find(conn, "3") == scope.find(conn, "Globex") == Tenant(3, "Globex")
    with pytest.raises(NotFound, match="no tenant 'Initech' in the database") as err:
        scope.find(conn, "Initech")
    assert err.value.hint == ('Tenants there: SysTech (id 1), Other "quoted" tenant (id 2), '
                              'Globex (id 3).')
