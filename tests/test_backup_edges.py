"""Values that once passed `verify` but could not be restored, and files built to exhaust a
reader: every value round-trips exactly; hostile files get one line, in bounded memory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import zstandard
from support.exotic import HUGE_INT
from support.exotic import JSON_EDGES_SQL as EDGE_SQL
from support.restore import table_hashes, write_seed_file

from ops.backup import format as backup_format
from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.backup.format import JSON_NULL_KEY
from ops.backup.verify import verify_backup
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

pytestmark = pytest.mark.security



@pytest.fixture
def edgy(conn: psycopg.Connection) -> dict:
    conn.execute(EDGE_SQL)
    return table_hashes(conn)


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"])
def test_json_null_and_huge_numbers_round_trip_after_verify(settings: Settings, conn, edgy,
                                                            compression: str | None):
    written = backup(settings, compression=compression)
    checked = verify_backup(written.path)
    assert checked.ok, checked.problem
    restore(settings, written.path, dry_run=True)
    conn.execute("UPDATE edgy SET must = '{}', maybe = NULL, many = NULL")
    restore(settings, written.path, safety_backup=False)
    assert table_hashes(conn) == edgy
    kinds = conn.execute("SELECT id, must IS NULL, jsonb_typeof(must), maybe IS NULL, "
                         "jsonb_typeof(maybe), plain::text FROM edgy ORDER BY id").fetchall()
    assert kinds[0][:3] == (1, False, "null") and kinds[0][3] is True
    assert kinds[1][3:5] == (False, "null")


def test_the_json_null_field_is_written_only_where_needed(settings: Settings, conn, edgy):
    lines = backup(settings, tables=["edgy"]).path.read_bytes().splitlines()
    rows = [json.loads(line.rstrip(b","), parse_int=Decimal) for line in lines
            if line.startswith(b"{\"id\"")]
    marks = {row["id"]: row.get(JSON_NULL_KEY) for row in rows}
    assert marks == {1: {"must": True, "many": [1]}, 2: {"maybe": True}, 3: None, 4: None}
    plain = {row["id"]: row["plain"] for row in rows}  # json: its exact text, as a string
    assert plain == {1: "null", 2: None, 3: "  null  ", 4: '{"x": 1}'}


def test_seed_format_file_with_a_huge_integer_restores(settings: Settings, conn, edgy,
                                                       tmp_path: Path):
    path = tmp_path / "seed.json"
    rows = [{"id": 9, "must": {"v": 1}, "maybe": None, "plain": None, "many": None, "n": 1}]
    text = json.dumps({"timestamp": "t", "version": "1.0", "tables": {"edgy": rows}}, indent=2)
    path.write_text(text.replace('"n": 1', f'"n": {HUGE_INT}'))
    restore(settings, path, safety_backup=False, only_listed_tables=True)
    assert conn.execute("SELECT n::text FROM edgy").fetchone()[0] == HUGE_INT


def test_a_giant_line_is_refused_after_reading_the_limit(settings: Settings, conn, edgy,
                                                         monkeypatch, tmp_path: Path):
    monkeypatch.setattr(backup_format, "MAX_ROW_BYTES", 1 << 20)
    monkeypatch.setattr("ops.backup.reader.MAX_ROW_BYTES", 1 << 20)
    written = backup(settings).path
    data = written.read_bytes()
    giant = data.replace(b'{"id":1,', b'{"id":1,"pad":"' + b"x" * (3 << 20) + b'",', 1)
    path = tmp_path / "giant.json"
    path.write_bytes(giant)
    with pytest.raises(OpsError, match="longer than 1 MB"):
        restore(settings, path, safety_backup=False)
    assert table_hashes(conn) == edgy
    assert "longer than 1 MB" in (verify_backup(path).problem or "")


def test_a_giant_string_in_a_seed_format_file_is_refused(settings: Settings, conn, sample,
                                                         monkeypatch, tmp_path: Path):
    monkeypatch.setattr("ops.backup.reader.MAX_ROW_BYTES", 1 << 20)
    path = write_seed_file(tmp_path / "seed.json",
                           {"tags": [{"id": 1, "tenant_id": 1, "name": "x" * (3 << 20)}]})
    with pytest.raises(OpsError, match="longer than 1 MB"):
        restore(settings, path, safety_backup=False)
    assert table_hashes(conn) == sample


def test_a_row_nested_too_deeply_is_one_line(settings: Settings, conn, sample, tmp_path: Path):
    deep = "[" * 200_000 + "]" * 200_000
    for name, text in (("seed.json", '{"version": "1.0", "tables": {"tags": [' + deep + "]}}"),):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(OpsError, match="nested too deeply"):
            restore(settings, path, safety_backup=False)
    assert table_hashes(conn) == sample


def test_a_utf8_bom_is_accepted(settings: Settings, conn, sample, tmp_path: Path):
    written = backup(settings).path
    path = tmp_path / "bom.json"
    path.write_bytes(backup_format.BOM + written.read_bytes())
    assert verify_backup(path).ok
    restore(settings, path, safety_backup=False)
    assert table_hashes(conn) == sample


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_a_compression_bomb_in_backup_dir_is_listed_in_bounded_memory(settings: Settings,
                                                                      suffix: str):
    name = f"backup-2030-01-01T00-00-00-000Z.json{suffix}"
    opener = gzip.open if suffix == ".gz" else zstandard.open
    with opener(settings.backup_dir / name, "wb") as fh:
        chunk = b" " * (1 << 20)
        for _ in range(512):  # 512 MB of spaces in a file of at most about 0.5 MB
            fh.write(chunk)
    # VmHWM, not ru_maxrss: after fork+exec the latter still counts the forking test process
    probe = ("import re, sys; from pathlib import Path; "
             "from ops.backup.archive import Archive; "
             "from ops.backup.verify import describe_backups; "
             "listed = describe_backups(Archive.at(Path(sys.argv[1]))); "
             "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]; "
             "print(listed[0].status, hwm)")
    done = subprocess.run([sys.executable, "-c", probe, str(settings.backup_dir)],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    status, peak_kb = done.stdout.split()
    assert status == "incomplete"
    assert int(peak_kb) < 150_000  # the whole member (frame) would be 512 MB
    assert read_meta(settings.backup_dir / name) is None


def test_verify_parses_rows_as_restore_does(settings: Settings, conn, sample, tmp_path: Path):
    """A file with consistent checksums whose rows restore would refuse is not verified."""
    from support.restore import write_line_backup

    for rows, problem in (([["not", "an object"]], "not an object"),
                          ([{"id": 1}, {"id": 2, "extra": 1}], "other fields")):
        path = write_line_backup(tmp_path / "odd.json", {"tags": rows})
        checked = verify_backup(path)
        assert not checked.ok and problem in checked.problem
        with pytest.raises(OpsError):
            restore(settings, path, safety_backup=False, only_listed_tables=True)
        assert table_hashes(conn) == sample


def test_an_error_about_many_unknown_fields_stays_one_short_line(settings: Settings, conn,
                                                                   sample, tmp_path: Path):
    from support.restore import write_line_backup

    row = {"id": 1, **{f"bogus{i}": i for i in range(100_000)}}
    path = write_line_backup(tmp_path / "wide.json", {"tags": [row]})
    with pytest.raises(OpsError, match=r"bogus0, bogus1, .*\(and 99995 more\)") as caught:
        restore(settings, path, safety_backup=False, only_listed_tables=True)
    assert len(caught.value.message) < 500
    assert table_hashes(conn) == sample
