"""Parallel backup (--jobs): the same file a single stream writes, from the same snapshot."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from support.backup import decompress

from ops.backup import create as backup_module
from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore


@pytest.fixture(autouse=True)
def parallel_for_small_databases(monkeypatch):
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)


def fill(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO tenants (id, name, slug) OVERRIDING SYSTEM VALUE "
                 "SELECT g, 'tenant ' || g, 'tenant-' || g FROM generate_series(1, 50) g")
    conn.execute("SELECT setval(pg_get_serial_sequence('tenants', 'id'), 50)")
    conn.execute("INSERT INTO clients (tenant_id, name, metadata) SELECT 1 + g % 50, "
                 "'client ' || g, jsonb_build_object('n', g, 'x', 22.30) "
                 "FROM generate_series(1, 3000) g")
    conn.execute("INSERT INTO products (tenant_id, name) SELECT 1, 'p' || g "
                 "FROM generate_series(1, 40) g")
    conn.execute("INSERT INTO tags (tenant_id, name) SELECT 1, 't' || g "
                 "FROM generate_series(1, 500) g")


def tables_section(path: Path) -> bytes:
    data = decompress(path.read_bytes()) if path.suffix in (".gz", ".zst") else path.read_bytes()
    return data[data.index(b"\n") + 1:data.rindex(b'\n"meta"')]


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"])
def test_parallel_backup_equals_the_single_stream_backup(settings: Settings, conn, compression):
    fill(conn)
    ext = {None: ".json", "zstd": ".json.zst", "gzip": ".json.gz"}[compression]
    one = backup(settings, output=settings.backup_dir / f"one{ext}", compression=compression,
                 jobs=1)
    three = backup(settings, output=settings.backup_dir / f"three{ext}",
                   compression=compression, jobs=3)
    assert tables_section(one.path) == tables_section(three.path)
    assert one.sha256 == three.sha256 and one.tables == three.tables
    assert Archive.at(settings.backup_dir).incomplete_uploads() == []
    restore(settings, three.path, safety_backup=False)  # checksums verified on the way


def test_parallel_streams_share_one_snapshot_under_concurrent_writers(settings: Settings, conn):
    fill(conn)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            write_pairs()
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    def write_pairs() -> None:
        with psycopg.connect(settings.database_url, autocommit=True) as own:
            n = 0
            while not stop.is_set():
                n += 1
                with own.transaction():  # parent and child together, in different streams
                    tenant = own.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) "
                                         "RETURNING id", (f"w{n}",) * 2).fetchone()[0]
                    own.execute("INSERT INTO clients (tenant_id, name) VALUES (%s, 'c')",
                                (tenant,))
                    own.execute("INSERT INTO tags (tenant_id, name) VALUES (%s, 't')",
                                (tenant,))
                written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        results = [backup(settings, jobs=3) for _ in range(3)]
    finally:
        stop.set()
        thread.join(30)
    assert errors == [] and len(written) > 0
    for result in results:
        # each committed pair is in all three tables or in none
        assert result.tables["tenants"] - 50 == result.tables["clients"] - 3000 \
            == result.tables["tags"] - 500


def test_a_failing_stream_leaves_no_backup_and_no_part_files(settings: Settings, conn,
                                                             monkeypatch):
    fill(conn)
    real = backup_module.stream_table

    def broken(c, table, write, advance, *args):
        if table.name == "clients":
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(c, table, write, advance, *args)

    monkeypatch.setattr(backup_module, "stream_table", broken)
    with pytest.raises(OpsError, match="lost the database connection"):
        backup(settings, jobs=2)
    assert list(settings.backup_dir.iterdir()) == []
