"""`backup` is generic and exact: every type (incl. ones our schema does not use yet), hostile
names, tables without a primary key — asserted on the JSON values in the file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.backup import file_lines, load
from support.exotic import TYPES_SQL as EDGE_SQL
from support.restore import table_hashes

from ops.backup.create import backup
from ops.backup.format import open_backup
from ops.backup.integrity import SIDECAR_SUFFIX
from ops.core.config import Settings
from ops.restore.apply import restore


@pytest.fixture
def edge_rows(settings: Settings, conn: psycopg.Connection) -> dict[int, dict]:
    conn.execute(EDGE_SQL)
    result = backup(settings, tables=["edge"])
    lines = file_lines(result.path)
    # Read the file exactly: numbers as Decimal text, never float.
    data = json.loads(b"\n".join(lines), parse_float=Decimal)
    return {row["id"]: row for row in data["tables"]["edge"]}


def test_backup_keeps_timestamps_dates_times_and_intervals_exact(edge_rows) -> None:
    one, two, three = edge_rows[1], edge_rows[2], edge_rows[3]
    assert one["ts"] == "2024-01-08T09:00:45.123456+00:00"  # UTC, microseconds
    assert one["d"] == "2024-02-29" and one["tm"] == "23:59:59.999999"
    assert one["ttz"] == "14:30:00+02"
    assert one["iv"] == "P1Y2M3DT4H5M6.789S"
    assert two["ts"] == "infinity" and two["d"] == "0044-03-15 BC"
    assert two["iv"] == "P-1DT-1S"
    assert three["ts"] == "-infinity" and three["d"] == "-infinity" and three["iv"] == "PT0S"


def test_backup_keeps_numbers_exact_with_nan_and_infinities_as_strings(edge_rows) -> None:
    one, two, three, four = edge_rows[1], edge_rows[2], edge_rows[3], edge_rows[4]
    assert one["num"] == Decimal("12345678901234567890.123456789012345678901234567890")
    assert str(one["num"]) == "12345678901234567890.123456789012345678901234567890"
    assert str(one["moneyLike"]) == "22.30"  # trailing zero kept
    assert one["big"] == 123456789012345678901234567890123456789  # beyond 64 bits
    assert one["f8"] == Decimal("0.1") and one["f4"] == Decimal("1.5")
    assert two["num"] == "NaN" and two["f8"] == "NaN" and two["f4"] == "Infinity"
    assert three["f8"] == "-Infinity" and three["num"] == 0
    assert four["f8"] == Decimal("1e+308")


def test_backup_keeps_json_arrays_and_text_exact(edge_rows) -> None:
    one = edge_rows[1]
    assert one["jb"] == {"a": {"b": [1, Decimal("2.50"), "ü 😀"]}, "k": None,
                         "q": 'say "hi" \\ back'}
    # json (not jsonb) keeps its exact text, written as a string
    assert one["js"] == '{"raw":\n 1,\t"s": "a\\nb"}'

    assert one["tags"] == ["a", 'b "q"', None, "c\\d", "é 😀"]
    assert one["ints"] == [1, -2, 3] and one["grid"] == [[1, 2], [3, 4]]
    assert one["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert one["b"] == "\\x00ff10" and edge_rows[2]["b"] == "\\x"
    assert one["flag"] is True and one["m"] == "sad ☹"
    assert one["txt"] == 'quote " backslash \\ newline \n tab \t cr \r emoji 😀 sep \u2028 end'
    assert edge_rows[2]["txt"] == "" and edge_rows[3]["txt"] is None


def test_backup_writes_every_column_including_generated_and_colliding_names(edge_rows) -> None:
    one = edge_rows[1]
    assert one["r"] == "alias trap"  # the column, not the whole row
    assert one["tenant_id"] == 7 and one["tenantId"] == 8
    assert one["shout"] == 700
    four = edge_rows[4]
    assert len(four) == len(one) and four["jb"] is None and four["tags"] is None


def test_backup_keeps_one_row_per_line_even_with_newlines_in_json_and_text(
        settings: Settings, conn: psycopg.Connection) -> None:
    conn.execute(EDGE_SQL)
    result = backup(settings, tables=["edge"])
    lines = file_lines(result.path)
    start = lines.index(b'"edge": [')
    rows = lines[start + 1:start + 5]
    assert lines[start + 5] == b"]"
    assert [json.loads(r.removesuffix(b","))["id"] for r in rows] == [1, 2, 3, 4]


def test_backup_handles_hostile_names_and_tables_without_primary_key(
        settings: Settings, conn: psycopg.Connection) -> None:
    conn.execute('CREATE TABLE "we""ird; DROP TABLE tenants;--" '
                 '("select" text, "x y" int, n int)')
    conn.execute('INSERT INTO "we""ird; DROP TABLE tenants;--" VALUES '
                 "('b', 2, 1), ('a', 1, 1), ('a', 1, NULL)")
    name = 'we"ird; DROP TABLE tenants;--'
    first = backup(settings, tables=[name])
    rows = load(first.path)["tables"][name]
    assert sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)) == sorted(
        [{"select": "b", "x y": 2, "n": 1}, {"select": "a", "x y": 1, "n": 1},
         {"select": "a", "x y": 1, "n": None}], key=lambda r: json.dumps(r, sort_keys=True))
    # no primary key: rows still come out in one stable order
    second = backup(settings, tables=[name])
    with open_backup(first.path) as a, open_backup(second.path) as b:
        assert a.read().split(b"\n")[1:-2] == b.read().split(b"\n")[1:-2]
    assert conn.execute("SELECT to_regclass('tenants') IS NOT NULL").fetchone()[0]


def test_backup_rows_come_out_in_primary_key_order(settings: Settings,
                                                   conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE ordered (a int, b text, PRIMARY KEY (b, a))")
    conn.execute("INSERT INTO ordered VALUES (2, 'x'), (1, 'y'), (1, 'x'), (3, 'a')")
    result = backup(settings, tables=["ordered"])
    rows = load(result.path)["tables"]["ordered"]
    assert [(r["b"], r["a"]) for r in rows] == [("a", 3), ("x", 1), ("x", 2), ("y", 1)]


def test_backup_is_readable_by_plain_json_loaders(edge_rows, settings: Settings) -> None:
    (path,) = [p for p in Path(settings.backup_dir).iterdir() if p.suffix != SIDECAR_SUFFIX]
    json.loads(path.read_bytes())  # strict parser: no bare NaN, valid escapes


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"])
def test_every_value_of_the_type_table_restores_exactly(settings: Settings,
                                                       conn: psycopg.Connection,
                                                       compression: str | None) -> None:
    conn.execute(EDGE_SQL)
    conn.execute("INSERT INTO edge (id, f4, f8, ints) VALUES (5, '-0', '-0', '{0,-0}')")
    before = table_hashes(conn)
    written = backup(settings, tables=["edge"], compression=compression)
    conn.execute("UPDATE edge SET f4 = 1, f8 = 1, txt = 'changed'")

    restore(settings, written.path, only_listed_tables=True, safety_backup=False)

    assert table_hashes(conn) == before
    assert conn.execute("SELECT f4::text, f8::text FROM edge WHERE id IN (3, 5) ORDER BY id"
                        ).fetchall() == [("-0", "-Infinity"), ("-0", "-0")]
