"""Capture through a real pooler: PgBouncer does not pass a replication connection on, so
capture says so in one line and reads the same slot over SQL, storing every change."""

from __future__ import annotations

from dataclasses import replace

import psycopg
from support.capture import drain, drop_slot, slot_name, stored_transactions
from support.faults import Lines
from support.pgbouncer import pgbouncer

from ops.backup.archive import Archive
from ops.core.config import Settings


def test_capture_through_pgbouncer_falls_back_to_sql_and_stores_every_change(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    slot, report = slot_name(), Lines()
    with pgbouncer(db_url) as pooled:
        through = replace(settings, database_url=pooled)
        try:
            drain(through, slot, initial_backup=False, report=report)
            tenant = conn.execute("INSERT INTO tenants (name, slug) VALUES ('Pool', 'pool') "
                                  "RETURNING id").fetchone()[0]
            conn.execute("UPDATE tenants SET name = 'Pooled' WHERE id = %s", (tenant,))
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
            drain(through, slot, initial_backup=False, report=report)
            active = conn.execute("SELECT active FROM pg_replication_slots WHERE "
                                  "slot_name = %s", (slot,)).fetchone()
        finally:
            drop_slot(db_url, slot)
    said = [line for line in report.lines if "reading changes over SQL" in line]
    assert said and all("unsupported startup parameter" in line for line in said), report.lines
    stored = stored_transactions(Archive.from_settings(through))
    assert [[(c.op, c.table, (c.row or c.key or {}).get("id")) for c in tx.changes]
            for tx in stored] == [[("insert", "tenants", str(tenant))],
                                  [("update", "tenants", str(tenant))],
                                  [("delete", "tenants", str(tenant))]]
    assert active == (False,)  # read over SQL: no stream holds the slot after
