"""`verify` and `backups`: a good backup verifies; flipped bytes and truncation are caught and
name the table; the seed's files verify for structure only and say so."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from support.backup import add_tenants_and_clients, decompress

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.verify import (
    CHECKED_AND_STORED,
    CHECKED_FULL,
    CHECKED_STRUCTURE,
    describe_backups,
    verify_backup,
)
from ops.core.config import Settings


@pytest.fixture
def good(settings: Settings, conn: psycopg.Connection) -> Path:
    add_tenants_and_clients(conn)
    return backup(settings).path


def flip_byte_in(path: Path, marker: bytes) -> None:
    """Change one byte inside the first line containing `marker` (keeps it valid-looking)."""
    data = bytearray(path.read_bytes())
    at = data.index(marker) + 1
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))


def test_verify_accepts_a_good_backup_plain_and_compressed(
        good: Path, settings: Settings) -> None:
    result = verify_backup(good)
    assert result.ok and result.problem is None
    assert result.checked == CHECKED_FULL + CHECKED_AND_STORED
    assert result.tables["clients"] == 4 and result.total_rows == 6
    packed = backup(settings, compression="zstd").path
    assert verify_backup(packed).ok and verify_backup(packed).compressed


def test_verify_catches_a_flipped_byte_and_names_the_table(good: Path) -> None:
    flip_byte_in(good, b'"name":"Client 1-0"')
    result = verify_backup(good)
    assert not result.ok
    assert "'clients'" in result.problem and "sha256" in result.problem


@pytest.mark.parametrize("cut_at", [b'"name":"Client 0-1"', b'"teams": [', b'"meta": '])
def test_verify_catches_a_truncated_file(good: Path, cut_at: bytes) -> None:
    data = good.read_bytes()
    good.write_bytes(data[:data.index(cut_at) + 5])
    result = verify_backup(good)
    assert not result.ok and result.problem


def test_verify_names_the_table_a_truncation_falls_in(good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[:data.index(b'"name":"Client 0-1"')])
    assert "'clients'" in verify_backup(good).problem


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_verify_catches_corruption_of_a_compressed_backup(compression: str, settings: Settings,
                                                          conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    packed = backup(settings, compression=compression).path
    data = packed.read_bytes()
    packed.write_bytes(data[: len(data) // 2])
    assert not verify_backup(packed).ok

    other = backup(settings, compression=compression).path
    data = bytearray(other.read_bytes())
    data[len(data) // 3] ^= 0xFF
    other.write_bytes(bytes(data))
    assert not verify_backup(other).ok


def test_verify_catches_an_edited_row_count_in_meta(good: Path) -> None:
    text = good.read_bytes().replace(b'"clients": 4', b'"clients": 5')
    good.write_bytes(text)
    result = verify_backup(good)
    assert not result.ok and "'clients'" in result.problem


def test_seed_format_files_verify_for_structure_only(backup_dir: Path) -> None:
    seed = {"timestamp": "2024-01-08T14:30:45.123Z", "version": "1.0",
            "tables": {"tenants": [{"id": 1, "name": "SysTech"}], "clients": []}}
    path = backup_dir / "backup-2024-01-08T14-30-45-123Z.json"
    path.write_text(json.dumps(seed, indent=2))
    result = verify_backup(path)
    assert result.ok and result.checked == CHECKED_STRUCTURE
    assert result.tables == {"tenants": 1, "clients": 0}

    path.write_text(json.dumps(seed, indent=2)[:-20])
    assert not verify_backup(path).ok


# --- the CLI -------------------------------------------------------------------------------


def test_verify_cli_latest_ok_and_bad_file_exits_1_naming_the_table(
        run_cli, good: Path) -> None:
    done = run_cli("verify")
    assert done.returncode == 0, done.stderr
    assert "✅ clients: 4 rows" in done.stdout and f"✅ Backup verified: {CHECKED_FULL}" in \
        done.stdout

    flip_byte_in(good, b'"name":"Client 1-0"')
    done = run_cli("verify", good.name)
    assert done.returncode == 1
    (line, *_) = done.stderr.splitlines()
    assert line.startswith(f"❌ {good.name} is NOT a good backup") and "'clients'" in line


def test_verify_cli_says_when_only_the_structure_was_checked(run_cli, backup_dir: Path) -> None:
    path = backup_dir / "seed.json"
    path.write_text(json.dumps({"version": "1.0", "tables": {"tenants": []}}, indent=2))
    done = run_cli("verify", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checked"] == CHECKED_STRUCTURE
    done = run_cli("verify", str(path))
    assert "structure only" in done.stdout


def test_verify_cli_unknown_file_lists_the_available_backups(run_cli, good: Path) -> None:
    done = run_cli("verify", "backup-1999.json")
    assert done.returncode == 1
    assert "backup not found" in done.stderr and good.name in done.stderr


def test_backups_lists_newest_first_with_rows_and_completeness(
        run_cli, settings: Settings, conn: psycopg.Connection) -> None:
    add_tenants_and_clients(conn)
    first = backup(settings).path
    second = backup(settings, compression="zstd").path
    broken = settings.backup_dir / "backup-2020-01-01T00-00-00-000Z.json"
    broken.write_bytes(first.read_bytes()[:300])
    (settings.backup_dir / "notes.txt").write_text("not a backup")

    listed = describe_backups(Archive.at(settings.backup_dir))
    assert [b.name for b in listed] == [second.name, first.name, broken.name]
    assert [b.status for b in listed] == ["complete (not verified)", "complete (not verified)",
                                          "incomplete"]
    assert listed[0].rows == 6 and listed[0].compressed and listed[2].rows is None

    done = run_cli("backups", "--verify", "--json")
    assert done.returncode == 1, done.stderr  # a bad backup found: not a success
    statuses = {b["name"]: b["status"] for b in json.loads(done.stdout)}
    assert statuses == {second.name: "verified", first.name: "verified", broken.name: "BAD"}
    assert (settings.backup_dir / f"{broken.name}.bad").exists()

    done = run_cli("backups")
    assert done.returncode == 0 and second.name in done.stdout and "notes.txt" not in \
        done.stdout
    assert "BAD (failed verification)" in next(line for line in done.stdout.splitlines()
                                               if broken.name in line)


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_the_meta_frame_does_not_change_what_stock_readers_see(good: Path, settings: Settings,
                                                               compression: str) -> None:
    packed = backup(settings, compression=compression).path
    plain = json.loads(decompress(packed.read_bytes()))
    assert plain["tables"] == json.loads(good.read_bytes())["tables"]


def test_a_byte_flipped_where_no_row_checksum_reaches_is_caught_by_the_sidecar(
        settings: Settings, conn: psycopg.Connection):
    """meta's column lists are not under any table's sha256: a flip there (a longer database
    name in meta moved the middle byte of a small backup into them) passes every row check."""
    add_tenants_and_clients(conn)
    made = backup(settings)
    data = bytearray(made.path.read_bytes())
    at = data.rindex(b'"team_members": ["') + len(b'"team_members": ["')
    data[at] ^= 0x01  # a letter of a column name of a table meta lists
    made.path.write_bytes(bytes(data))

    found = verify_backup(made.path)
    assert not found.ok and "sha256 mismatch" in found.problem
