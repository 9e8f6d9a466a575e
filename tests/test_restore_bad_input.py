"""Bad backup files: each gives one clear line naming the table/row, exit 1, and leaves the
database exactly as it was (ordered per-table hashes) with no safety backup left behind."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import zstandard
from support.restore import read_lines, table_hashes, write_line_backup

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.backup.format import header_line, parse_table_open, table_open_line
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore


@pytest.fixture
def good_backup(settings: Settings, sample: dict) -> Path:
    return backup(settings).path


def backup_rows(path: Path) -> dict[str, list[str]]:
    """table -> its row lines, from a file in our layout."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in read_lines(path)[1:]:
        name = parse_table_open(line)
        if name is not None:
            current = tables.setdefault(name, [])
        elif line.startswith(b"{") and current is not None:
            current.append(line.decode().rstrip("\n").removesuffix(","))
        elif line.startswith(b"]"):
            current = None
    return tables


def rewritten(good: Path, change: Callable[[dict[str, list[str]]], None]) -> Path:
    """A consistent file (fresh meta and checksums) with one deliberate defect in its rows."""
    rows = backup_rows(good)
    change(rows)
    target = good.with_name("bad.json")
    return write_line_backup(target, {}, raw_rows=rows, revision=read_meta(good)["alembicRevision"])


def _edit(table: str, index: int, **fields) -> Callable[[dict], None]:
    def change(rows: dict[str, list[str]]) -> None:
        row = json.loads(rows[table][index])
        row.update(fields)
        rows[table][index] = json.dumps(row, ensure_ascii=False)
    return change


def _expect_refused(settings: Settings, conn: psycopg.Connection, before: dict, path: Path,
                    pattern: str) -> OpsError:
    with pytest.raises(OpsError, match=pattern) as caught:
        restore(settings, str(path))
    assert caught.value.exit_code == 1
    assert "\n" not in caught.value.message
    assert table_hashes(conn) == before
    assert [b for b in Archive.at(settings.backup_dir).backups() if b.safety] == []
    return caught.value


def test_not_json(settings, conn, sample, tmp_path: Path):
    path = tmp_path / "notjson.json"
    path.write_text("this is not json\n")
    _expect_refused(settings, conn, sample, path, "not valid JSON")


def test_empty_file(settings, conn, sample, tmp_path: Path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    _expect_refused(settings, conn, sample, path, "not valid JSON or truncated")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_plain_file(settings, conn, sample, good_backup: Path, keep: float):
    data = good_backup.read_bytes()
    path = good_backup.with_name("cut.json")
    path.write_bytes(data[: int(len(data) * keep)])
    _expect_refused(settings, conn, sample, path, "truncated")


@pytest.mark.parametrize("cut", [1, 4, 9])
def test_a_file_cut_inside_a_tables_opening_line_is_called_truncated(
        settings, conn, sample, good_backup: Path, cut: int):
    """Cut short, the second table's `"name": [` line reads as malformed: the refusal must
    still say truncated (a random cut found this)."""
    data = good_backup.read_bytes()
    second = data.index(b'],\n"') + 3  # where the line opening the second table starts
    path = good_backup.with_name("cut.json")
    path.write_bytes(data[:second + cut])
    _expect_refused(settings, conn, sample, path, "truncated")


def test_truncated_gzip_file(settings, conn, sample, good_backup: Path):
    data = gzip.compress(good_backup.read_bytes())
    path = good_backup.with_name("cut.json.gz")
    path.write_bytes(data[: len(data) // 2])
    _expect_refused(settings, conn, sample, path, "truncated or corrupt")


@pytest.mark.parametrize("keep", [0.5, -3])  # mid-file, and only the last checksum gone
def test_truncated_zstd_file(settings, conn, sample, good_backup: Path, keep: float):
    data = backup(settings, compression="zstd").path.read_bytes()
    path = good_backup.with_name("cut.json.zst")
    path.write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:int(keep)])
    error = _expect_refused(settings, conn, sample, path, "truncated or corrupt")
    assert "zstd frame" in error.message or "meta" in error.message


def test_garbage_after_the_zstd_magic(settings, conn, sample, tmp_path: Path):
    path = tmp_path / "garbage.json.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 64)
    _expect_refused(settings, conn, sample, path, "truncated or corrupt at its start")


def test_a_zstd_bomb_is_refused_in_bounded_memory(settings, conn, sample, tmp_path: Path):
    """A tiny file whose first row inflates to 1 GB: refused at MAX_ROW_BYTES, never held
    whole, and the database is untouched."""
    path = tmp_path / "bomb.json.zst"
    packer = zstandard.ZstdCompressor(level=19).compressobj()
    parts = [packer.compress(header_line("2024-01-08T14:30:45.123Z") + table_open_line("tenants"))]
    parts += [packer.compress(b"x" * (1 << 20)) for _ in range(1024)]
    path.write_bytes(b"".join(parts) + packer.flush())
    assert path.stat().st_size < 200_000
    _expect_refused(settings, conn, sample, path, "longer than")


def test_unknown_version(settings, conn, sample, good_backup: Path):
    data = good_backup.read_bytes().replace(b'"version": "1.0"', b'"version": "9.9"', 1)
    path = good_backup.with_name("v9.json")
    path.write_bytes(data)
    _expect_refused(settings, conn, sample, path, "unknown backup format version '9.9'")


def test_unknown_table(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, lambda rows: rows.update(nosuch=['{"id": 1}']))
    _expect_refused(settings, conn, sample, path, "unknown table 'nosuch'")


def test_table_name_crafted_as_sql_is_never_executed(settings, conn, sample,
                                                     good_backup: Path):
    evil = 'tenants"; DROP TABLE users; --'
    path = rewritten(good_backup, lambda rows: rows.update({evil: ['{"id": 1}']}))
    _expect_refused(settings, conn, sample, path, "unknown table")
    assert conn.execute("SELECT to_regclass('public.users') IS NOT NULL").fetchone()[0]


def test_unknown_column(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, _edit("tenants", 0, bogusField=1))
    _expect_refused(settings, conn, sample, path, r"table tenants: unknown column\(s\) bogusField")


def test_wrong_type_names_table_row_line_and_column(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, _edit("tasks", 1, estimateMinutes="lots"))
    error = _expect_refused(settings, conn, sample, path,
                            r"table tasks row 2 \(line \d+\), column estimate_minutes: "
                            r"invalid input syntax for type integer")
    line_no = int(error.message.split("(line ")[1].split(")")[0])
    assert b'"lots"' in read_lines(path)[line_no - 1]


def test_object_where_a_number_belongs(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, _edit("tags", 0, tenantId={"id": 1}))
    _expect_refused(settings, conn, sample, path, r"table tags row 1 \(line \d+\).*wrong type")


def test_duplicate_primary_key(settings, conn, sample, good_backup: Path):
    """Found when the primary key is rebuilt after the load (see ops.core.indexes)."""
    path = rewritten(good_backup, lambda rows: rows["tenants"].append(rows["tenants"][0]))
    _expect_refused(settings, conn, sample, path,
                    r"^table tenants: duplicate key \(id\)=\(1\): two rows have it "
                    r"\(key pk_tenants\); nothing was changed$")


def test_duplicate_unique_key(settings, conn, sample, good_backup: Path):
    def edit(rows: dict[str, list[str]]) -> None:
        _edit("tasks", 1, publicId=json.loads(rows["tasks"][0])["publicId"])(rows)

    path = rewritten(good_backup, edit)
    _expect_refused(settings, conn, sample, path,
                    r"^table tasks: duplicate key \(public_id\)=\([0-9a-f-]+\): two rows have "
                    r"it \(key uq_tasks_public_id\); nothing was changed$")


def test_dangling_foreign_key(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, _edit("comments", 0, authorId=999))
    _expect_refused(settings, conn, sample, path,
                    r"table comments row id=1: author_id=999 points to a missing users row")


def test_row_with_different_fields(settings, conn, sample, good_backup: Path):
    def drop_title(rows: dict) -> None:
        row = json.loads(rows["tasks"][1])
        del row["title"]
        rows["tasks"][1] = json.dumps(row)
    path = rewritten(good_backup, drop_title)
    _expect_refused(settings, conn, sample, path, r"table tasks row 2 .*missing title")


def test_row_that_is_not_an_object(settings, conn, sample, good_backup: Path):
    path = rewritten(good_backup, lambda rows: rows["tags"].append("[1, 2]"))
    _expect_refused(settings, conn, sample, path, r"table tags row 3 .*expected an object")


def test_flipped_byte_is_caught_by_the_checksum(settings, conn, sample, good_backup: Path):
    data = good_backup.read_bytes()
    path = good_backup.with_name("flipped.json")
    path.write_bytes(data.replace(b"Looks good", b"Looks gooD", 1))
    _expect_refused(settings, conn, sample, path, "table 'comments' does not match its sha256")


def test_row_count_differing_from_meta(settings, conn, sample, good_backup: Path):
    lines = read_lines(good_backup)
    meta = json.loads(b"{" + lines[-1])["meta"]
    meta["rowCounts"]["tags"] += 1
    path = good_backup.with_name("counts.json")
    path.write_bytes(b"".join(lines[:-1]) + b'"meta": ' + json.dumps(meta).encode() + b"}\n")
    _expect_refused(settings, conn, sample, path, "table 'tags' has 2 rows but meta says 3")


def test_truncated_seed_format_file(settings, conn, sample, tmp_path: Path):
    path = tmp_path / "seed.json"
    text = json.dumps({"timestamp": "t", "version": "1.0",
                       "tables": {"tags": [{"id": 1, "tenantId": 1, "name": "x", "color": None,
                                           "description": None,
                                           "createdAt": "2024-01-01T00:00:00Z"}] * 3}},
                      indent=2)
    path.write_text(text[: len(text) // 2])
    _expect_refused(settings, conn, sample, path, "not valid JSON or truncated in table 'tags'")


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not valid JSON"),
    ('{"timestamp": "t", "version": "2.0", "tables": {\n"tags": [\n]\n}}\n',
     "unknown backup format version"),
])
def test_cli_bad_file_prints_one_error_line_and_exits_1(run_cli, conn, sample, backup_dir: Path,
                                                        content: str, message: str):
    (backup_dir / "bad.json").write_text(content)
    result = run_cli("restore", "bad.json")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("❌")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr
    assert table_hashes(conn) == sample


@pytest.mark.security
def test_what_meta_shows_to_be_unrestorable_is_refused_before_any_lock(settings, conn, sample,
                                                                       good_backup: Path):
    """Another session holds a table: refusing early never waits for it (a lock wait would
    end, 30 s later, in a different error)."""
    meta = read_meta(good_backup)
    meta["columns"]["tenants"] = [*meta["columns"]["tenants"], "bogus_field"]
    rows = backup_rows(good_backup)
    rows["tenants"] = [json.dumps({**json.loads(r), "bogusField": 1}) for r in rows["tenants"]]
    path = write_line_backup(good_backup.with_name("wide.json"), {}, raw_rows=rows,
                             meta={"columns": meta["columns"]},
                             revision=meta["alembicRevision"])
    with psycopg.connect(settings.database_url) as holder:
        holder.execute("LOCK TABLE tenants IN ACCESS SHARE MODE")
        _expect_refused(settings, conn, sample, path, r"unknown column\(s\) bogusField")
