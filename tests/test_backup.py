"""`backup`: the file format, stable output, compression, partial backups, the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from support.backup import (
    add_tenants_and_clients,
    decompress,
    file_lines,
    load,
    table_section,
)

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.files import looks_complete, parse_backup_name, read_meta
from ops.backup.format import column_keys, key_to_column
from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.core.errors import OpsError

NAME = re.compile(r"^backup-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z\.json$")


def test_backup_writes_seed_compatible_json_with_camel_case_rows_and_meta(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    result = backup(settings)

    assert result.path.parent == settings.backup_dir and NAME.match(result.path.name)
    data = load(result.path)
    assert list(data)[:3] == ["timestamp", "version", "tables"]
    assert data["version"] == "1.0"
    moment, _, _ = parse_backup_name(result.path.name)
    assert data["timestamp"] == moment.strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z" == result.timestamp
    expected_tables = [t.name for t in discover_tables(conn)]
    assert list(data["tables"]) == expected_tables
    tenant = data["tables"]["tenants"][0]
    assert set(tenant) == {"id", "name", "plan", "settings", "createdAt", "updatedAt", "slug"}
    assert tenant["name"] == 'Tenant 0 "quoted" ✓' and tenant["settings"] == {"seats": 0,
                                                                            "x": [1.50]}
    client = data["tables"]["clients"][0]
    assert client["tenantId"] == tenant["id"] and client["website"] is None
    assert [c["name"] for c in data["tables"]["clients"]] == \
        ["Client 0-0", "Client 0-1", "Client 1-0", "Client 1-1"]

    meta = data["meta"]
    assert meta["rowCounts"]["tenants"] == 2 and meta["rowCounts"]["clients"] == 4
    assert meta["totalRows"] == 6 == result.total_rows
    assert meta["tables"] == expected_tables
    assert meta["alembicRevision"] == conn.execute(
        "SELECT version_num FROM alembic_version").fetchone()[0]
    assert meta["database"] == conn.info.dbname
    assert "postgresql://" not in json.dumps(meta)
    assert meta["partial"] is None and meta["compressed"] is False
    assert meta["columns"]["clients"][:2] == ["id", "tenant_id"]
    assert result.sha256 == meta["sha256"]
    assert result.size_bytes == result.path.stat().st_size
    assert read_meta(result.path) == meta and looks_complete(result.path)


def test_backup_puts_one_row_per_line_and_hashes_each_row_line(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn, tenants=3, clients_each=1)
    result = backup(settings)
    lines = file_lines(result.path)

    start = lines.index(b'"clients": [')
    rows = lines[start + 1:start + 4]
    assert lines[start + 4] in (b"]", b"],")
    assert [r.endswith(b",") for r in rows] == [True, True, False]
    bodies = [r.removesuffix(b",") for r in rows]
    assert all(json.loads(b)["name"].startswith("Client") for b in bodies)
    assert hashlib.sha256(b"".join(b + b"\n" for b in bodies)).hexdigest() == \
        result.sha256["clients"]
    empty = lines.index(b'"teams": [')
    assert lines[empty + 1] in (b"]", b"],")
    assert result.sha256["teams"] == hashlib.sha256(b"").hexdigest()


def test_two_backups_of_unchanged_data_have_byte_identical_table_sections(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    first = backup(settings)
    second = backup(settings)

    assert first.path != second.path
    assert table_section(first.path) == table_section(second.path)
    assert first.sha256 == second.sha256


@pytest.mark.parametrize(("compression", "suffix", "magic"), [
    ("zstd", ".json.zst", b"\x28\xb5\x2f\xfd"), ("gzip", ".json.gz", b"\x1f\x8b")])
def test_compressed_backup_holds_the_same_tables_and_meta_is_found_from_the_tail(
        settings: Settings, conn: psycopg.Connection, compression: str, suffix: str,
        magic: bytes) -> None:
    add_tenants_and_clients(conn)
    plain = backup(settings)
    packed = backup(settings, compression=compression)

    assert packed.path.name.endswith(suffix) and packed.compressed
    assert packed.path.read_bytes()[:len(magic)] == magic
    assert table_section(packed.path) == table_section(plain.path)
    assert decompress(packed.path.read_bytes()).endswith(b"}\n")
    meta = read_meta(packed.path)
    assert meta is not None and meta["compressed"] is True and meta["sha256"] == plain.sha256
    assert meta["compression"] == compression
    assert [b.name for b in Archive.at(settings.backup_dir).backups()][0] == packed.path.name


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is not installed")
def test_the_stock_zstd_command_reads_our_file_as_the_plain_backup(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    packed = backup(settings, compression="zstd", jobs=2)
    out = subprocess.run(["zstd", "-d", "-c", str(packed.path)], capture_output=True,
                         check=True).stdout
    assert out == decompress(packed.path.read_bytes())
    assert json.loads(out)["meta"]["sha256"] == packed.sha256


def test_meta_is_read_from_a_bounded_tail_of_a_big_zstd_backup(
        settings: Settings, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO tenants (name, slug, plan) SELECT md5(g::text), 't' || g, "
                 "'free' FROM generate_series(1, 30000) g")  # well past the 64 KB tail window
    packed = backup(settings, compression="zstd")
    assert packed.path.stat().st_size > 64 * 1024
    meta = read_meta(packed.path)
    assert meta is not None and meta["rowCounts"]["tenants"] == 30000


def test_partial_backup_holds_only_the_chosen_tables_and_says_so_in_meta(
        settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    only = backup(settings, tables=["clients", "tenants"])
    assert list(load(only.path)["tables"]) == ["tenants", "clients"]  # dependency order
    assert load(only.path)["meta"]["partial"] == {"tables": ["clients", "tenants"],
                                                  "excludeTables": []}

    without = backup(settings, exclude=["comments", "item_tags"])
    names = list(load(without.path)["tables"])
    assert "comments" not in names and "item_tags" not in names and "tenants" in names


def test_backup_of_an_unknown_table_fails_and_leaves_no_file(settings: Settings) -> None:
    with pytest.raises(OpsError, match="unknown table.*nope"):
        backup(settings, tables=["tenants", "nope"])
    assert list(settings.backup_dir.iterdir()) == []


def test_output_option_writes_the_named_file_and_its_suffix_picks_the_compression(
        settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "mine.json.gz"
    target.parent.mkdir()
    result = backup(settings, output=target, compression="zstd")  # the name wins
    assert result.path == target and result.compression == "gzip"
    assert target.read_bytes()[:2] == b"\x1f\x8b" and read_meta(target) is not None
    zst = backup(settings, output=target.with_name("mine.json.zst"))
    assert zst.compression == "zstd" and read_meta(zst.path)["compression"] == "zstd"

    into_dir = backup(settings, output=target.parent)
    assert into_dir.path.parent == target.parent and NAME.match(into_dir.path.name)


def test_backup_creates_a_missing_backup_dir_when_its_parent_exists(
        db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "new-backups"
    result = backup(Settings(database_url=db_url, backup_dir=missing, app_env="test"))
    assert result.path.parent == missing and result.path.is_file()


def test_backup_column_keys_never_lose_a_column() -> None:
    columns = ["id", "tenant_id", "tenantId", "a_b1", "a_b_1", "created_at", "r"]
    keys = column_keys(columns)
    assert keys["created_at"] == "createdAt" and keys["tenant_id"] == "tenant_id"
    assert len(set(keys.values())) == len(columns)
    back = key_to_column(columns)
    assert all(back[keys[c]] == c for c in columns)


# --- the CLI -------------------------------------------------------------------------------


def test_backup_cli_prints_the_seed_style_lines(run_cli, conn: psycopg.Connection,
                                                backup_dir: Path) -> None:
    add_tenants_and_clients(conn)
    done = run_cli("backup")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "🔄 Starting database backup..."
    assert "✅ tenants: 2 rows" in out and "✅ clients: 4 rows" in out
    assert "✅ Backup completed successfully!" in out
    (written,) = Archive.at(backup_dir).backups()
    assert f"📁 Backup file: {backup_dir / written.name}" in out
    tables = len(discover_tables(conn))
    assert f"📊 Total tables backed up: {tables}" in out
    assert any(re.fullmatch(r"💾 File size: \d+\.\d\d KB", line) for line in out)


def test_backup_cli_json_summary_and_compress_from_environment(
        run_cli_process, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    done = run_cli_process("backup", "--json", env={"BACKUP_COMPRESS": "1"})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["compressed"] is True and summary["path"].endswith(".json.zst")
    assert summary["tables"]["clients"] == 4 and summary["total_rows"] == 6
    assert set(summary["sha256"]) == set(summary["tables"])


def test_backup_settings_work_from_the_env_file_and_flags_override_them(
        run_cli, conn: psycopg.Connection, tmp_path: Path) -> None:
    add_tenants_and_clients(conn)
    env_file = tmp_path / "settings.env"
    env_file.write_text("BACKUP_COMPRESS=yes\nBACKUP_JOBS=3\n")
    from_file = run_cli("--env-file", str(env_file), "backup", "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["compressed"] is True
    overridden = run_cli("--env-file", str(env_file), "backup", "--no-compress", "--json")
    assert json.loads(overridden.stdout)["compressed"] is False
    chosen = run_cli("--env-file", str(env_file), "backup", "--compression", "gzip", "--json")
    assert json.loads(chosen.stdout)["path"].endswith(".json.gz")
    contradicted = run_cli("backup", "--no-compress", "--compression", "zstd")
    assert contradicted.returncode == 2 and "contradict" in contradicted.stderr
    for value, suffix in (("gzip", ".json.gz"), ("zstd", ".json.zst"), ("true", ".json.zst"),
                          ("0", ".json")):
        env_file.write_text(f"BACKUP_COMPRESS={value}\n")
        made = run_cli("--env-file", str(env_file), "backup", "--json")
        assert json.loads(made.stdout)["path"].endswith(suffix), value
    env_file.write_text("BACKUP_COMPRESS=lz4\n")
    bad_compression = run_cli("--env-file", str(env_file), "backup")
    assert bad_compression.returncode != 0 and "BACKUP_COMPRESS='lz4'" in bad_compression.stderr
    assert "Traceback" not in bad_compression.stderr
    env_file.write_text("BACKUP_JOBS=many\n")
    bad = run_cli("--env-file", str(env_file), "backup")
    assert bad.returncode == 1 and "BACKUP_JOBS='many'" in bad.stderr


def test_backup_cli_tables_option(run_cli, backup_dir: Path) -> None:
    done = run_cli("backup", "--tables", "tenants, clients", "--json")
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["tables"]) == ["tenants", "clients"]


@pytest.mark.parametrize("make_dir", ["parent-missing", "is-a-file"])
def test_backup_cli_refuses_a_bad_backup_dir_with_one_line(
        run_cli, tmp_path: Path, make_dir: str) -> None:
    if make_dir == "parent-missing":
        bad = tmp_path / "no" / "such" / "dir"
    else:
        bad = tmp_path / "a-file"
        bad.write_text("x")
    done = run_cli("backup", env={"BACKUP_DIR": str(bad)})
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert errors[0].startswith("❌ backup directory") and "Traceback" not in done.stderr
    assert not (tmp_path / "no").exists()


def test_backup_cli_reports_an_unreachable_database_in_one_line(
        run_cli, backup_dir: Path) -> None:
    done = run_cli("backup", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"})
    assert done.returncode == 1
    assert done.stderr.startswith("❌ cannot connect to database") and "Traceback" not in \
        done.stderr
    assert list(backup_dir.iterdir()) == []
