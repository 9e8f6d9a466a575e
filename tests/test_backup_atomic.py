"""`backup` is atomic and consistent: kill -9, disk full, lost connection and exceptions leave
no file that could pass for a backup; concurrent writers never produce dangling references."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from support.backup import add_tenants_and_clients, load

from ops.backup.archive import KINDS, Archive
from ops.backup.create import backup, write_backup
from ops.backup.format import column_keys
from ops.core.catalog import discover_tables
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.core.output import Reporter

pytestmark = pytest.mark.faults  # part of the fault-injection suite


def make_big_table(conn: psycopg.Connection, rows: int) -> None:
    """Rows of ~300 bytes, so a backup takes a while and writes many blocks."""
    conn.execute("CREATE TABLE big (id int PRIMARY KEY, payload text)")
    conn.execute("INSERT INTO big SELECT g, repeat(md5(g::text), 9) "
                 "FROM generate_series(1, %s) g", (rows,))


def assert_nothing_mistakable(backup_dir: Path) -> None:
    assert Archive.at(backup_dir).backups() == []
    assert Archive.at(backup_dir).latest(kinds=KINDS) is None
    assert not list(backup_dir.glob("backup-*"))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ops", *args]


def test_kill_9_mid_backup_leaves_no_backup_file(conn: psycopg.Connection, cli_env: dict,
                                                  backup_dir: Path, run_cli) -> None:
    make_big_table(conn, 300_000)
    proc = subprocess.Popen(cli("backup"), env=cli_env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            partial = list(backup_dir.glob(".backup-*.partial"))
            if partial and partial[0].stat().st_size > 2_000_000:
                break
            assert proc.poll() is None, "backup finished before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("the partial file never grew")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_nothing_mistakable(backup_dir)
    listing = run_cli("backups").stdout
    # one temp file per stream (--jobs), however many had started when the kill came
    partials = len(list(backup_dir.glob(".backup-*.partial")))
    assert partials >= 1
    assert "No backups" in listing and f"{partials} unfinished upload(s)" in listing
    restore = run_cli("restore", "latest", "--no-safety-backup")
    assert restore.returncode == 1 and "no complete backup" in restore.stderr


def test_disk_full_mid_backup_exits_1_with_one_line_and_no_file(
        conn: psycopg.Connection, cli_env: dict, backup_dir: Path) -> None:
    make_big_table(conn, 20_000)  # ~6 MB of JSON

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    done = subprocess.run(cli("backup"), env=cli_env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, preexec_fn=small_disk)
    assert done.returncode == 1
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("❌ writing ") and "File too large" in first
    assert "Traceback" not in done.stderr
    assert_nothing_mistakable(backup_dir)
    assert list(backup_dir.iterdir()) == []  # the temp file was removed too


class _Hook(Reporter):
    """A reporter that runs `action` when the backup reports `table` done."""

    def __init__(self, table: str, action) -> None:
        super().__init__(quiet=True)
        self.table, self.action, self.fired = table, action, False

    def line(self, text: str = "") -> None:
        if text.startswith(f"✅ {self.table}:") and not self.fired:
            self.fired = True
            self.action()


def test_lost_connection_mid_backup_fails_with_one_line_and_no_file(
        settings: Settings, conn: psycopg.Connection, pg_server_url: str) -> None:
    add_tenants_and_clients(conn)

    def kill_backend() -> None:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND application_name = 'tasklets-db'",
                          (conn.info.dbname,))

    with pytest.raises(OpsError, match="lost the database connection while backing up table"):
        backup(settings, report=_Hook("tenants", kill_backend))
    assert list(settings.backup_dir.iterdir()) == []


def test_any_exception_mid_backup_removes_the_temp_file(settings: Settings,
                                                        conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)

    def interrupt() -> None:
        assert list(settings.backup_dir.glob(".backup-*.partial"))  # it was being written
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backup(settings, report=_Hook("clients", interrupt))
    assert list(settings.backup_dir.iterdir()) == []


def dangling_references(path: Path, conn: psycopg.Connection) -> list[str]:
    """Every foreign key in the file that points at a row the file does not hold."""
    data = load(path)["tables"]
    problems = []
    for table in discover_tables(conn):
        keys = column_keys(table.column_names)
        for fk in table.foreign_keys:
            ref = next(t for t in discover_tables(conn) if t.name == fk.ref_table)
            ref_keys = column_keys(ref.column_names)
            present = {tuple(r[ref_keys[c]] for c in fk.ref_columns)
                       for r in data[fk.ref_table]}
            for row in data[table.name]:
                value = tuple(row[keys[c]] for c in fk.columns)
                if None not in value and value not in present:
                    problems.append(f"{table.name}.{fk.name} -> {value}")
    return problems


def test_rows_committed_during_a_backup_are_not_in_it(settings: Settings,
                                                      conn: psycopg.Connection) -> None:
    """A writer commits a tenant and its client after `tenants` was copied but before
    `clients`: without one snapshot the client would reference a tenant not in the file."""
    add_tenants_and_clients(conn)
    conn.execute("UPDATE tenants SET name = name || ' (old)'")  # free the builder's names

    def write_parent_and_child() -> None:
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            add_tenants_and_clients(other, tenants=1, clients_each=1)

    result = backup(settings, report=_Hook("tenants", write_parent_and_child))
    assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 5  # it did commit
    assert result.tables["clients"] == 4 and result.tables["tenants"] == 2
    assert dangling_references(result.path, conn) == []


def test_backups_taken_under_concurrent_writers_have_no_dangling_references(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            with psycopg.connect(conn.info.dsn, autocommit=True) as own:
                n = 0
                while not stop.is_set():
                    n += 1
                    with own.transaction():
                        tenant = own.execute(
                            "INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
                            (f"w{worker}-{n}",) * 2).fetchone()[0]
                        own.execute("INSERT INTO clients (tenant_id, name) VALUES (%s, 'c')",
                                    (tenant,))
                    if n % 3 == 0:  # deletes too: a child must never outlive its parent
                        own.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
                    written[0] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        while written[0] < 30:
            time.sleep(0.01)
        results = [backup(settings) for _ in range(3)]
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors
    assert written[0] > 30
    for result in results:
        assert dangling_references(result.path, conn) == []
        # the writers add (and delete) whole pairs: a snapshot sees pairs, never halves
        assert result.tables["clients"] - 4 == result.tables["tenants"] - 2


def test_disk_full_during_a_compressed_backup_exits_1_and_leaves_no_file(
        conn: psycopg.Connection, cli_env: dict, backup_dir: Path) -> None:
    """The gzip writer runs on its own thread: its failure must still stop the backup."""
    conn.execute("CREATE TABLE noise (id int PRIMARY KEY, payload text)")
    conn.execute("INSERT INTO noise SELECT g, md5(g::text) || md5((g * 7)::text) "
                 "FROM generate_series(1, 40000) g")  # ~3 MB, hardly compressible

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    done = subprocess.run(cli("backup", "--compress"), env=cli_env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("❌ writing ") and "File too large" in done.stderr
    assert list(backup_dir.iterdir()) == []


def _peak_rss_mb_of_backup(cli_env: dict, *args: str) -> float:
    """Peak RSS of a whole `tasklets-db backup` process, measured by that process itself."""
    code = ("import resource, sys\nfrom ops.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, "backup", "--json", *args], env=cli_env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def test_backup_memory_does_not_grow_with_the_data(conn: psycopg.Connection,
                                                   cli_env: dict) -> None:
    conn.execute("CREATE TABLE tiny (id int PRIMARY KEY)")
    make_big_table(conn, 250_000)  # ~80 MB of JSON: held in memory it would show
    small = _peak_rss_mb_of_backup(cli_env, "--tables", "tiny")
    large = _peak_rss_mb_of_backup(cli_env, "--tables", "big")
    packed = _peak_rss_mb_of_backup(cli_env, "--tables", "big", "--compress")
    assert large - small < 40 and packed - small < 40, (small, large, packed)


def test_write_backup_on_an_autocommit_connection_still_uses_one_snapshot(
        settings: Settings, conn: psycopg.Connection, tmp_path: Path) -> None:
    add_tenants_and_clients(conn)
    conn.execute("UPDATE tenants SET name = name || ' (old)'")

    def write_parent_and_child() -> None:
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            add_tenants_and_clients(other, tenants=1, clients_each=1)

    with psycopg.connect(conn.info.dsn, autocommit=True) as own:
        result = write_backup(own, tmp_path / "snap.json",
                              report=_Hook("tenants", write_parent_and_child))
    assert result.tables["tenants"] == 2 and result.tables["clients"] == 4
    assert dangling_references(result.path, conn) == []
