"""restore: round trips, safety backup, file selection, seed files, partial files, schema
compatibility, both foreign-key modes, the production guard - against a real PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
from support.migrations import FIRST, HEAD
from support.restore import (
    backup_name,
    insert_sample,
    marker,
    schema_lines,
    table_hashes,
    write_line_backup,
    write_seed_file,
)

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.core.catalog import current_revision
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import DEFERRED, REPLICA, restore
from ops.restore.reset import reset


@pytest.fixture
def owner_settings(owner_db_url: str, backup_dir: Path) -> Settings:
    """Settings for a non-superuser role that owns the tables (managed Postgres)."""
    return Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")


def _safety_backups(backup_dir: Path) -> list[Path]:
    return [b.path for b in Archive.at(backup_dir).backups() if b.safety]


@pytest.mark.parametrize("compression", [None, "zstd", "gzip"],
                         ids=["json", "json.zst", "json.gz"])
def test_round_trip_restores_every_table_identically_and_identities_continue(
        settings: Settings, conn: psycopg.Connection, sample: dict, compression: str | None):
    made = backup(settings, compression=compression)
    reset(settings, confirm=True)
    assert all(rows == 0 for rows, _ in table_hashes(conn).values())

    result = restore(settings, "latest", safety_backup=False)

    assert result.source == str(made.path)
    assert table_hashes(conn) == sample
    assert result.fk_mode == REPLICA
    assert result.checksums_verified
    assert result.total_rows == sum(rows for rows, _ in sample.values())
    # identities continue past the restored ids (tasks has explicit ids 10 and 20)
    new_id = conn.execute("INSERT INTO tasks (tenant_id, product_id, title) "
                          "VALUES (1, 1, 'after restore') RETURNING id").fetchone()[0]
    assert new_id == 21
    assert conn.execute("INSERT INTO tenants (name, slug) VALUES ('n', 'n') "
                        "RETURNING id").fetchone()[0] == 3


def test_restore_replaces_changed_data_and_keeps_the_environment_marker(
        settings: Settings, conn: psycopg.Connection, sample: dict):
    backup(settings)
    conn.execute("UPDATE tasks SET title = 'changed' WHERE id = 10")
    conn.execute("DELETE FROM comments")
    conn.execute("INSERT INTO tags (id, tenant_id, name) VALUES (50, 1, 'extra')")
    conn.execute("UPDATE ops_metadata SET value = 'development' WHERE key = 'environment'")
    before_marker = marker(conn)

    restore(settings, safety_backup=False)

    assert table_hashes(conn) == sample
    assert marker(conn) == before_marker  # ops_metadata is never restored


def test_restore_as_table_owner_without_superuser_defers_foreign_keys(
        owner_settings: Settings):
    settings = owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles "
                                "WHERE rolname = current_user").fetchone()[0]
        insert_sample(conn)
        expected = table_hashes(conn)
        backup(settings)
        reset(settings, confirm=True)

        result = restore(settings)

        assert result.fk_mode == DEFERRED
        assert table_hashes(conn) == expected
        assert result.safety_backup is not None and Path(result.safety_backup).exists()
        conn.execute("INSERT INTO comments (tenant_id, task_id, body) VALUES (1, 10, 'ok')")


def test_owner_restore_rejects_a_dangling_reference_and_changes_nothing(
        owner_settings: Settings):
    settings = owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_sample(conn)
        before = table_hashes(conn), schema_lines(conn)
        path = write_line_backup(settings.backup_dir / "dangling.json", {
            "tenants": [{"id": 1, "name": "T", "plan": "free", "settings": {},
                         "createdAt": "2024-01-01T00:00:00+00:00",
                         "updatedAt": "2024-01-01T00:00:00+00:00", "slug": "t"}],
            "tags": [{"id": 1, "tenantId": 99, "name": "x", "color": None, "description": None,
                      "createdAt": "2024-01-01T00:00:00+00:00"}],
        }, revision=current_revision(conn))
        # Found when the foreign key is re-added after the load; the indexes and keys set
        # aside for it come back with the rollback.
        with pytest.raises(OpsError, match=r"table tags row id=1: tenant_id=99 points to a "
                                            r"missing tenants row"):
            restore(settings, str(path), safety_backup=False)
        assert (table_hashes(conn), schema_lines(conn)) == before


def test_safety_backup_holds_the_replaced_data_and_restores_it(
        settings: Settings, conn: psycopg.Connection, sample: dict):
    backup(settings)
    conn.execute("UPDATE tenants SET plan = 'changed after backup'")
    changed = table_hashes(conn)

    result = restore(settings)

    assert result.safety_backup is not None
    safety = Path(result.safety_backup)
    assert safety.name.startswith("pre-restore-")
    assert safety.name.endswith(".json.zst") and safety.parent == settings.backup_dir
    assert table_hashes(conn) == sample
    restore(settings, safety.name, safety_backup=False)
    assert table_hashes(conn) == changed


def test_no_safety_backup_option_writes_none(settings: Settings, sample: dict):
    backup(settings)
    restore(settings, safety_backup=False)
    assert _safety_backups(settings.backup_dir) == []


def test_cli_restore_prints_the_seed_lines_and_the_safety_backup_name(
        run_cli, settings: Settings, sample: dict):
    backup(settings)
    result = run_cli("restore")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    safety = _safety_backups(settings.backup_dir)
    assert len(safety) == 1
    for expected in ["🔄 Starting database restore...", "📅 Backup timestamp: ",
                     "📊 Tables to restore: 16", "⚙️  Disabling foreign key checks...",
                     "🗑️  Clearing existing data...", "✅ tenants: 2 rows", "✅ tasks: 2 rows",
                     "⚙️  Re-enabling foreign key checks...", "✅ Database restore completed!",
                     f"📊 Total rows restored: {sum(r for r, _ in sample.values())}"]:
        assert any(line.startswith(expected) for line in lines), expected
    assert lines[1].startswith("📂 Reading backup: ") and "backup-" in lines[1]
    assert any(safety[0].name in line for line in lines)


def test_cli_restore_json_is_machine_readable(run_cli, settings: Settings, sample: dict):
    backup(settings)
    result = run_cli("restore", "--json", "--no-safety-backup")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tables"]["tasks"] == 2
    assert summary["total_rows"] == sum(r for r, _ in sample.values())
    assert summary["safety_backup"] is None and summary["dry_run"] is False


def test_dry_run_validates_and_reports_without_changing_anything(
        settings: Settings, conn: psycopg.Connection, sample: dict):
    backup(settings)
    conn.execute("DELETE FROM comments")
    before = table_hashes(conn)
    result = restore(settings, dry_run=True)
    assert result.dry_run and result.tables["comments"] == 1
    assert table_hashes(conn) == before
    assert _safety_backups(settings.backup_dir) == []


# ---------------------------------------------------------------- choosing the file


def test_latest_skips_incomplete_and_safety_backups(settings: Settings, conn, sample: dict):
    good = backup(settings).path
    newer = settings.backup_dir / backup_name()
    newer.write_bytes(good.read_bytes()[:-200])  # a newer backup cut short
    (settings.backup_dir / ("pre-restore-" + backup_name().removeprefix("backup-"))) \
        .write_bytes(good.read_bytes())
    result = restore(settings, "latest", dry_run=True)
    assert result.source == str(good)


def test_a_bare_name_is_read_from_backup_dir_and_a_path_from_anywhere(
        settings: Settings, sample: dict, tmp_path: Path):
    made = backup(settings).path
    assert restore(settings, made.name, dry_run=True).source == str(made)
    elsewhere = tmp_path / "elsewhere" / "copy.json"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(made.read_bytes())
    assert restore(settings, str(elsewhere), dry_run=True).source == str(elsewhere)


def test_missing_backup_error_lists_the_available_ones(run_cli, settings: Settings,
                                                       sample: dict):
    made = backup(settings).path
    result = run_cli("restore", "backup-1999-01-01T00-00-00-000Z.json")
    assert result.returncode == 1
    assert "backup not found: backup-1999-01-01T00-00-00-000Z.json" in result.stderr
    assert made.name in result.stderr


@pytest.mark.parametrize("name", ["..", "escape.json"])
def test_bare_names_escaping_backup_dir_are_refused(settings: Settings, sample: dict,
                                                    tmp_path: Path, name: str):
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    if name != "..":
        os.symlink(outside, settings.backup_dir / name)
    with pytest.raises(OpsError, match="points outside BACKUP_DIR"):
        restore(settings, name)


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_compression_is_detected_by_content_not_name(settings: Settings, conn, sample: dict,
                                                     compression: str):
    made = backup(settings, compression=compression).path
    disguised = settings.backup_dir / "disguised.json"
    disguised.write_bytes(made.read_bytes())
    reset(settings, confirm=True)
    restore(settings, disguised.name, safety_backup=False)
    assert table_hashes(conn) == sample


# ---------------------------------------------------------------- seed files, partial files


def _rows(conn: psycopg.Connection, table: str) -> list[dict]:
    """A table's rows as the seed tool would have dumped them (JSON-typed values)."""
    return conn.execute(f"SELECT coalesce(json_agg(t ORDER BY t.*), '[]') FROM {table} t"
                        ).fetchone()[0]


@pytest.mark.parametrize("camel", [True, False], ids=["camelCase", "snake_case"])
def test_seed_format_file_restores_with_a_note_about_its_missing_revision(
        settings: Settings, conn: psycopg.Connection, camel: bool):
    conn.execute("INSERT INTO tenants (id, name, slug, settings) "
                 "VALUES (1, 'SysTech', 'systech', '{\"a\": 1}')")
    conn.execute("INSERT INTO tags (id, tenant_id, name) VALUES (1, 1, 'bug'), (2, 1, 'ux')")
    expected = table_hashes(conn)
    path = write_seed_file(settings.backup_dir / "seed.json", {
        "tenants": _rows(conn, "tenants"), "tags": _rows(conn, "tags")}, camel=camel)
    reset(settings, confirm=True)

    result = restore(settings, path.name, safety_backup=False)

    assert result.layout == "streaming" and result.backup_revision is None
    assert any("no schema revision" in note for note in result.notes)
    assert table_hashes(conn) == expected
    assert conn.execute("INSERT INTO tags (tenant_id, name) VALUES (1, 'n') RETURNING id"
                        ).fetchone()[0] == 3


def test_tables_missing_from_the_file_are_emptied_by_default(
        settings: Settings, conn: psycopg.Connection, sample: dict):
    path = write_seed_file(settings.backup_dir / "partial.json",
                           {"tenants": _rows(conn, "tenants")})
    result = restore(settings, path.name, safety_backup=False)
    counts = {name: rows for name, (rows, _) in table_hashes(conn).items()}
    assert counts["tenants"] == 2
    assert all(rows == 0 for name, rows in counts.items() if name != "tenants")
    assert "comments" in result.emptied


def test_only_listed_tables_leaves_the_other_tables_untouched(
        settings: Settings, conn: psycopg.Connection, sample: dict):
    tags = _rows(conn, "tags")
    tags[1]["color"] = "#00ff00"
    path = write_seed_file(settings.backup_dir / "tags.json", {"tags": tags})

    result = restore(settings, path.name, only_listed_tables=True, safety_backup=False)

    after = table_hashes(conn)
    assert {n: h for n, h in after.items() if n != "tags"} == \
        {n: h for n, h in sample.items() if n != "tags"}
    assert conn.execute("SELECT color FROM tags WHERE id = 2").fetchone()[0] == "#00ff00"
    assert "comments" in result.untouched and result.emptied == []


def test_only_listed_tables_as_owner_refuses_a_clear_that_would_cascade(
        owner_settings: Settings):
    settings = owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_sample(conn)
        before = table_hashes(conn)
        path = write_seed_file(settings.backup_dir / "tags.json", {"tags": _rows(conn, "tags")})
        with pytest.raises(OpsError, match="would cascade into item_tags"):
            restore(settings, path.name, only_listed_tables=True, safety_backup=False)
        assert table_hashes(conn) == before


# ---------------------------------------------------------------- schema compatibility


def test_a_backup_newer_than_the_database_is_refused_naming_both(
        old_db_url: str, backup_dir: Path):
    settings = Settings(database_url=old_db_url, backup_dir=backup_dir, app_env="test")
    path = write_line_backup(backup_dir / "newer.json", {"tenants": []}, revision=HEAD)
    with psycopg.connect(old_db_url) as conn:
        before = table_hashes(conn), schema_lines(conn)
        with pytest.raises(OpsError) as caught:
            restore(settings, path.name)
        message = caught.value.message
        assert f"backup was made at revision {HEAD}, the database is at {FIRST}" in message
        assert "push" in caught.value.hint and "--allow-schema-mismatch" in caught.value.hint
        assert (table_hashes(conn), schema_lines(conn)) == before


def test_allow_schema_mismatch_loads_common_columns_and_reports_the_rest(
        settings: Settings, conn: psycopg.Connection):
    conn.execute("ALTER TABLE tags ADD COLUMN weight integer NOT NULL DEFAULT 5")
    path = write_line_backup(settings.backup_dir / "other.json", {
        "tenants": [{"id": 1, "name": "T", "plan": "free", "settings": {},
                     "createdAt": "2024-01-01T00:00:00+00:00",
                     "updatedAt": "2024-01-01T00:00:00+00:00", "slug": "t",
                     "legacyFlag": True}],
        "tags": [{"id": 1, "tenantId": 1, "name": "bug", "color": None, "description": None,
                  "createdAt": "2024-01-01T00:00:00+00:00"}],
        "gone_table": [{"id": 1}],
    }, revision="0000old")

    result = restore(settings, path.name, allow_schema_mismatch=True, safety_backup=False)

    assert result.dropped_columns == ["tenants.legacyFlag"]
    assert result.defaulted_columns == ["tags.weight"]
    assert result.skipped_tables == ["gone_table"]
    assert conn.execute("SELECT name, weight FROM tags").fetchall() == [("bug", 5)]


# ---------------------------------------------------------------- production guard


def test_restore_refuses_production_app_env_unless_allowed(run_cli, settings: Settings,
                                                           conn, sample: dict):
    backup(settings)
    conn.execute("DELETE FROM comments")
    before = table_hashes(conn)
    refused = run_cli("restore", env={"APP_ENV": "production"})
    assert refused.returncode == 2
    assert "production" in refused.stderr and "--allow-production" in refused.stderr
    assert table_hashes(conn) == before
    allowed = run_cli("restore", "--allow-production", env={"APP_ENV": "production"})
    assert allowed.returncode == 0, allowed.stderr
    assert table_hashes(conn) == sample


def test_restore_refuses_a_database_marked_production(settings: Settings, conn, sample: dict):
    backup(settings)
    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    conn.execute("DELETE FROM comments")
    before = table_hashes(conn)
    with pytest.raises(OpsError, match="marker") as caught:
        restore(settings)
    assert caught.value.exit_code == 2
    assert table_hashes(conn) == before
    restore(settings, allow_production=True, safety_backup=False)
    assert table_hashes(conn) == sample
    assert marker(conn) == [("environment", "production")]


# ---------------------------------------------------------------- exact values


ODD_TYPES = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE odd_types (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  t text, "userId" text, user_id int,
  n numeric(40, 10), n_any numeric, d double precision, r real,
  ts timestamptz, tsi timestamp, day date, tod time, span interval,
  u uuid, b bytea, flag boolean, ints int[], grid text[], docs jsonb[], doc jsonb, m mood,
  nums numeric[] DEFAULT '{1.10,2.500,NULL}',
  twice bigint GENERATED ALWAYS AS (user_id * 2) STORED
);
INSERT INTO odd_types (t, "userId", user_id, n, n_any, d, r, ts, tsi, day, tod, span, u, b,
                       flag, ints, grid, docs, doc, m) VALUES
  (E'tab\there "quotes" \\ backslash\nnewline 🚀 \x01', 'camel', 7,
   123456789012345678901234567890.1234567890, 'NaN', 'Infinity', 1.5,
   '2024-01-08 14:30:45.123456+05:30', 'infinity', '0044-03-15 BC', '23:59:59.999999',
   '1 year 2 months 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '\x00ff10', true, '{1,NULL,3}', '{{a,b},{"c d",NULL}}',
   ARRAY['{"x": 1.10}'::jsonb, '[]'::jsonb], '{"price": 22.30, "u": "\u00e9\u4e2d", "n": null,
   "deep": {"l": [1, 2.50, -0.0, 1e-7, 12345678901234567890123]}}', 'happy'),
  (NULL, NULL, NULL, -0.5, 1e-20, '-Infinity', 'NaN', '-infinity', '2000-02-29 00:00',
   '2024-02-29', '00:00', '-1 day', NULL, '\x', false, '{}', '{}', '{}', '"just a string"',
   NULL),
  ('', '', 0, 0, 0, 5e-324, 0, '1970-01-01 00:00+00', NULL, NULL, NULL, 'PT0S', NULL, NULL,
   NULL, NULL, NULL, NULL, '[1, "two", {"three": [3.0]}]', 'sad');
"""


def test_every_value_type_survives_backup_and_restore_exactly(settings: Settings, conn):
    conn.execute(ODD_TYPES)
    expected = table_hashes(conn)
    backup(settings)
    conn.execute("DELETE FROM odd_types")

    restore(settings, safety_backup=False)

    assert table_hashes(conn) == expected
    # GENERATED ALWAYS identity continues after the restored ids
    assert conn.execute("INSERT INTO odd_types (t) VALUES ('next') RETURNING id").fetchone()[0] == 4


@pytest.mark.parametrize("scale", [0, 1], ids=["sample", "scale-1"])
def test_seeded_database_round_trips_through_backup_reset_restore(
        settings: Settings, conn: psycopg.Connection, scale: float):
    from ops.seed.builtin import run_seeds

    run_seeds(settings, lookups=True, sample=True, scale=scale)
    expected = table_hashes(conn)
    assert sum(rows for rows, _ in expected.values()) > (20_000 if scale else 50)
    backup(settings, compression="zstd")
    reset(settings, confirm=True)

    restore(settings)

    assert table_hashes(conn) == expected
    top = conn.execute("SELECT max(id) FROM tasks").fetchone()[0]
    new_id = conn.execute("INSERT INTO tasks (tenant_id, product_id, title) SELECT tenant_id, "
                          "id, 'after restore' FROM products LIMIT 1 RETURNING id").fetchone()[0]
    assert new_id == top + 1
