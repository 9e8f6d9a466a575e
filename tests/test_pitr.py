"""Point-in-time restore ([3/5] #27): backups record where change replay starts, and
`restore --at` / `restore --tenant X --at` bring a database to any covered second."""

from __future__ import annotations

import psycopg
from support.backup import load

from ops.backup.create import backup
from ops.capture.segments import parse_lsn
from ops.core.config import Settings


def test_a_backup_records_the_snapshot_that_misses_a_transaction_in_flight(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    with psycopg.connect(db_url) as other:
        other.execute("INSERT INTO tenants (name, slug) VALUES ('In flight', 'in-flight')")
        xid = other.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        result = backup(settings)
        other.commit()
    committed_at = parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    capture = load(result.path)["meta"]["capture"]
    xmin, xmax, xip = capture["snapshot"].split(":")
    assert xid >= int(xmax) or str(xid) in xip.split(",")  # not in the backup
    assert parse_lsn(capture["walLsn"]) < committed_at  # its commit comes after walLsn
    assert capture["snapshotTime"].endswith("+00:00")
    assert "In flight" not in {row["name"] for row in load(result.path)["tables"]["tenants"]}
