"""Change capture and point-in-time restore on every PostgreSQL major the suite runs (15, 16,
18): pgoutput's messages, the slot functions and `pg_current_snapshot()` as each server has
them.

Per major: two tenants, a slot, a full backup, then a bounded load (inserts, updates that
leave a TOASTed value untouched, deletes) across both tenants while capture drains the slot;
`restore --at T` and `restore --tenant X --at T` into a fresh database on the same server
must then equal the database at T (ordered per-table hashes, as test_pitr does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest
from support.capture import changes_of, drain, drop_slot, slot_name, stored_transactions
from support.databases import create_database, drop_database, with_dbname
from support.restore import table_hashes
from support.tenants import GLOBEX, SYSTECH, insert_two_tenants, tenant_hashes

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.config import Settings
from ops.restore.at_time import restore_at
from ops.schema.migrate import push

pytestmark = pytest.mark.pgversions

VERSIONS = (15, 16, 18)
TRANSACTIONS = 300  # the load; the point restored to is the state after the first half
TOASTED = ("UPDATE tasks SET description = (SELECT string_agg(md5(random()::text || g), '') "
           "FROM generate_series(1, 150) g) WHERE id IN (10, 15)")


def load_step(conn: psycopg.Connection, i: int) -> None:
    """Transaction `i` of the load: SysTech on even steps, Globex on odd ones; an insert, an
    update of a task whose TOASTed description it leaves alone, or a delete of an earlier
    insert."""
    tenant, task = (SYSTECH, 10) if i % 2 == 0 else (GLOBEX, 15)
    match i % 3:
        case 0:
            conn.execute("INSERT INTO tags (tenant_id, name) VALUES (%s, %s)",
                         (tenant, f"load-{i}"))
        case 1:
            conn.execute("UPDATE tasks SET title = %s, estimate_minutes = %s WHERE id = %s",
                         (f"step {i}", i, task))
        case _:
            conn.execute("DELETE FROM tags WHERE name = %s", (f"load-{i - 8}",))
    conn.commit()


def write_load(url: str, point: dict) -> None:
    """The load, one writer; `point` gets the time and the hashes after its first half (the
    only writer, so what it sees between two commits is the database at that time)."""
    with psycopg.connect(url) as conn:
        for i in range(TRANSACTIONS):
            load_step(conn, i)
            if i == TRANSACTIONS // 2:
                point["at"] = conn.execute("SELECT clock_timestamp()").fetchone()[0]
                point["all"] = table_hashes(conn)
                point["globex"] = tenant_hashes(conn, GLOBEX)
                conn.commit()


@pytest.fixture
def server(request: pytest.FixtureRequest, pg_versions: dict[int, str]) -> Iterator[str]:
    """A database of the app's schema on the server of the major asked for (dropped after)."""
    major = request.param
    assert major in pg_versions, f"servers found: {sorted(pg_versions)}"
    name = create_database(pg_versions[major], None)
    try:
        url = with_dbname(pg_versions[major], name)
        with psycopg.connect(url) as conn:
            assert conn.info.server_version // 10000 == major
        yield url
    finally:
        drop_database(pg_versions[major], name)


@pytest.fixture
def fresh(server: str) -> Iterator[str]:
    """Another database on the same server, at the same schema: where the restores go."""
    root = server.rsplit("/", 1)[0] + "/postgres"
    name = create_database(root, None)
    try:
        yield with_dbname(root, name)
    finally:
        drop_database(root, name)


@pytest.mark.parametrize("server", VERSIONS, ids=lambda v: f"pg{v}", indirect=True)
def test_restore_at_and_tenant_at_equal_the_database_then(server: str, fresh: str,
                                                          tmp_path) -> None:
    settings = Settings(database_url=server, backup_dir=tmp_path, app_env="test")
    into = Settings(database_url=fresh, backup_dir=tmp_path, app_env="test")
    push(settings)
    push(into)
    with psycopg.connect(server) as conn:
        insert_two_tenants(conn, volume=0.01)
        conn.execute(TOASTED)
        conn.commit()
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)  # the slot, before the backup
        backup(settings)
        point: dict = {}
        writer = threading.Thread(target=write_load, args=(server, point))
        writer.start()
        for _ in range(10_000):  # capture drains while the load writes
            drain(settings, slot, initial_backup=False)
            if not writer.is_alive():
                break
        writer.join(timeout=60)
        assert not writer.is_alive()
        drain(settings, slot, initial_backup=False)  # the load's tail
        with psycopg.connect(server) as conn:
            now = table_hashes(conn)
            globex_now = tenant_hashes(conn, GLOBEX)
            systech_now = tenant_hashes(conn, SYSTECH)
    finally:
        drop_slot(server, slot)
    with psycopg.connect(server) as conn:  # no slot left to hold the server's WAL
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone()[0] == 0
    assert isinstance(point["at"], datetime)
    task_updates = [change for op, change in changes_of(
        stored_transactions(Archive.at(tmp_path)), "tasks") if op == "update"]
    assert len(task_updates) == TRANSACTIONS // 3
    assert all("description" in change["unchanged"] for change in task_updates)  # TOASTed
    assert point["all"] != now and point["globex"] != globex_now  # the load changed both

    whole = restore_at(into, point["at"].isoformat(), safety_backup=False)
    assert whole.plan.counts.transactions > TRANSACTIONS // 3
    with psycopg.connect(fresh) as conn:
        assert table_hashes(conn) == point["all"]

    restore_at(into, "latest", safety_backup=False)  # the fresh database as the live one now
    with psycopg.connect(fresh) as conn:
        assert table_hashes(conn) == now
    restore_at(into, point["at"].isoformat(), tenant="Globex", safety_backup=False)
    with psycopg.connect(fresh) as conn:
        assert tenant_hashes(conn, GLOBEX) == point["globex"]
        assert tenant_hashes(conn, SYSTECH) == systech_now  # the others as they are now
