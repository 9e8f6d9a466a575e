"""A tenant's point-in-time restore decides, change by change, which rows are the tenant's:
rows that move between tenants (their tenant_id, or the parent that places them) must end
where they were at TIME, with the rows placed through them, and a row replay cannot rebuild
is refused rather than left out."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from support.capture import drain, drop_slot, slot_name
from support.tenants import GLOBEX, SYSTECH, insert_two_tenants, tenant_hashes

from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import OpsError, UsageError
from ops.restore.at_time import parse_at, restore_at

# Rows placed through foreign keys, made before the backup: client 61 with product 61 and
# their client_products row in Globex, client 60 / product 60 / (60, 60) in SysTech, and a
# Globex tag 950 on no item.
BEFORE = """
INSERT INTO clients (id, tenant_id, name) VALUES (60, 1, 'Mover in'), (61, 3, 'Mover out');
INSERT INTO products (id, tenant_id, name) VALUES (60, 1, 'Moves in'), (61, 3, 'Moves out');
INSERT INTO client_products (client_id, product_id) VALUES (60, 60), (61, 61);
INSERT INTO tags (id, tenant_id, name) VALUES (950, 3, 'leaves Globex');
"""


@pytest.fixture
def scenario(settings: Settings, conn: psycopg.Connection, db_url: str
             ) -> Iterator[tuple[str, str]]:
    """(slot, url): two tenants, BEFORE, a slot and a full backup to replay on."""
    insert_two_tenants(conn, volume=0)
    conn.execute(BEFORE)
    conn.commit()
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        backup(settings)
        yield slot, db_url
    finally:
        drop_slot(db_url, slot)


def _at_then_more(settings: Settings, conn: psycopg.Connection, slot: str, change: str,
                  after: str = "UPDATE tenants SET plan = 'later' WHERE id IN (1, 3)"
                  ) -> tuple[str, dict, dict]:
    """Run `change`, note the time and both tenants' rows, run `after`, capture it all."""
    conn.execute(change)
    conn.commit()
    at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    then = tenant_hashes(conn, GLOBEX), tenant_hashes(conn, SYSTECH)
    conn.commit()
    conn.execute(after)
    conn.commit()
    drain(settings, slot, initial_backup=False)
    return at.isoformat(), then[0], then[1]


def _refused_joining(settings: Settings, conn: psycopg.Connection, at: str, globex: dict,
                     naming: str) -> None:
    """Globex restored to `at` is refused in one line saying a row joined the tenant and
    naming `naming`, with Globex's rows as they are now (not as at `at`)."""
    now = tenant_hashes(conn, GLOBEX)
    assert now != globex  # (the later change is there to be undone)
    with pytest.raises(OpsError) as refused:
        restore_at(settings, at, tenant="Globex", safety_backup=False)
    message = refused.value.message
    assert "joined the tenant" in message and naming in message, message
    assert "\n" not in message
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == now  # refused: nothing changed


def test_a_child_inserted_before_its_parent_in_one_transaction_is_the_parents_tenants(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str]) -> None:
    """The keys are DEFERRABLE: a transaction may insert an item_tags row before the tag
    that places it in Globex. At commit both are Globex's."""
    slot, _ = scenario
    at, globex, _ = _at_then_more(settings, conn, slot, """
        SET CONSTRAINTS ALL DEFERRED;
        INSERT INTO item_tags (id, tag_id, epic_id) VALUES (900, 900, 2);
        INSERT INTO tags (id, tenant_id, name) VALUES (900, 3, 'parent after child');
    """)
    assert globex["item_tags"][0] == 3  # item_tags 3, 4 and 900
    restore_at(settings, at, tenant="Globex", safety_backup=False)
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == globex


def test_a_parent_that_left_the_tenant_takes_no_new_child_with_it(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str]) -> None:
    """Tag 950 was Globex's at the backup and moves to SysTech; then a SysTech task is
    tagged with it: that item_tags row is SysTech's, never Globex's."""
    slot, _ = scenario
    at, globex, _ = _at_then_more(settings, conn, slot, """
        UPDATE tags SET tenant_id = 1 WHERE id = 950;
        INSERT INTO item_tags (id, tag_id, task_id) VALUES (901, 950, 10);
    """)
    restore_at(settings, at, tenant="Globex", safety_backup=False)
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == globex


def test_rows_placed_through_a_parent_leave_the_tenant_with_it(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str]) -> None:
    """Client 61 and product 61 move from Globex to SysTech together: their client_products
    row (placed through the client) is SysTech's from then on."""
    slot, _ = scenario
    at, globex, _ = _at_then_more(settings, conn, slot, """
        UPDATE clients SET tenant_id = 1 WHERE id = 61;
        UPDATE products SET tenant_id = 1 WHERE id = 61;
    """)
    restore_at(settings, at, tenant="Globex", safety_backup=False)
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == globex


def test_a_parent_joining_the_tenant_by_an_update_is_refused_with_nothing_changed(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str]) -> None:
    """Client 60 and product 60 move from SysTech to Globex together: at TIME their
    client_products row is Globex's. No change carries it (its own row did not change):
    replay cannot bring it, so it refuses with nothing changed rather than restore
    Globex without it."""
    slot, _ = scenario
    at, globex, _ = _at_then_more(settings, conn, slot, """
        UPDATE clients SET tenant_id = 3 WHERE id = 60;
        UPDATE products SET tenant_id = 3 WHERE id = 60;
    """)
    _refused_joining(settings, conn, at, globex, "client_products")


def test_a_row_joining_the_tenant_with_an_unchanged_toasted_value_is_refused(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str]) -> None:
    """A SysTech product (no row placed through it) with a TOASTed description moves to
    Globex: pgoutput sends the description as unchanged, so replay cannot write the row it
    never had; it must refuse (nothing changed) rather than restore Globex without it."""
    slot, _ = scenario
    conn.execute("INSERT INTO products (id, tenant_id, name, description) VALUES (62, 1, "
                 "'big', (SELECT string_agg(md5(random()::text || g), '') "
                 "FROM generate_series(1, 400) g))")
    conn.commit()
    at, globex, _ = _at_then_more(settings, conn, slot,
                                  "UPDATE products SET tenant_id = 3 WHERE id = 62")
    _refused_joining(settings, conn, at, globex, "description")


@pytest.mark.parametrize("text", ["-1000000d", "-99999999999h", "9999-12-31T23:59:59-01:00"])
def test_an_at_out_of_the_calendar_is_a_usage_error_not_a_traceback(text: str, run_cli
                                                                   ) -> None:
    with pytest.raises(UsageError, match="--at"):
        parse_at(text)
    done = run_cli("restore", "--at", text)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("gone", ["DELETE FROM tags WHERE id = 950",
                                  "TRUNCATE tags CASCADE"])
def test_a_parent_key_deleted_and_used_again_by_another_tenant_places_nothing_here(
        settings: Settings, conn: psycopg.Connection, scenario: tuple[str, str],
        gone: str) -> None:
    """Tag 950 was Globex's at the backup; it is deleted (or its table truncated) and the
    id given to a SysTech tag, which then tags a SysTech task: that item_tags row is SysTech's,
    never Globex's."""
    slot, _ = scenario
    conn.execute(gone)  # a transaction of its own: the id is free before it is used again
    conn.commit()
    at, globex, _ = _at_then_more(settings, conn, slot, """
        INSERT INTO tags (id, tenant_id, name) VALUES (950, 1, 'id used again');
        INSERT INTO item_tags (id, tag_id, task_id) VALUES (902, 950, 10);
    """)
    restore_at(settings, at, tenant="Globex", safety_backup=False)
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == globex
