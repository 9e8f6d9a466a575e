"""Indexes and keys set aside for a restore's load and rebuilt after it (ops.core.indexes):
the schema comes back exactly as it was - every index, constraint, name and option - whether
the restore commits or fails (the failure: tests/test_restore.py's dangling reference), and what
a definition cannot recreate is never dropped."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from support.restore import insert_sample, schema_lines, table_hashes, write_line_backup

from ops.backup.create import backup
from ops.core.catalog import current_revision, discover_tables
from ops.core.config import Settings
from ops.core.indexes import set_aside
from ops.restore.apply import restore


def _counts(lines: list[str], tables: set[str]) -> tuple[int, int]:
    """(indexes and keys, foreign keys) of `tables` in schema_lines."""
    indexes = [line for line in lines if line.startswith("index ")
               and re.search(r" ON public\.(\w+) ", line)[1] in tables]
    fks = [line for line in lines if line.startswith("constraint ")
           and line.split()[1].split(".")[0] in tables and " FOREIGN KEY " in line]
    return len(indexes), len(fks)  # every key constraint has its index


@pytest.fixture
def owner_settings(owner_db_url: str, backup_dir: Path) -> Settings:
    return Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")


@pytest.mark.parametrize("role", ["superuser", "owner"])
def test_restore_rebuilds_every_index_and_key_as_it_was(
        role: str, settings: Settings, owner_settings: Settings):
    settings = settings if role == "superuser" else owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_sample(conn)
        data, before = table_hashes(conn), schema_lines(conn)
        backup(settings)

        result = restore(settings, safety_backup=False)

        assert schema_lines(conn) == before
        assert table_hashes(conn) == data
    keys, fks = _counts(before, set(result.tables) | set(result.emptied))
    assert (result.indexes_rebuilt, result.foreign_keys_checked) == (keys, fks)
    assert fks > 40 and keys > 80


def test_only_listed_tables_rebuilds_theirs_and_keeps_the_others(
        settings: Settings, conn: psycopg.Connection):
    insert_sample(conn)
    data, before = table_hashes(conn), schema_lines(conn)
    rows = conn.execute("SELECT json_agg(t ORDER BY t.id) FROM task_dependencies t"
                        ).fetchone()[0]
    assert rows, "the sample has task dependencies"
    path = write_line_backup(settings.backup_dir / "deps.json", {"task_dependencies": rows},
                             revision=current_revision(conn))

    result = restore(settings, path.name, only_listed_tables=True, safety_backup=False)

    assert schema_lines(conn) == before
    assert table_hashes(conn) == data
    keys, fks = _counts(before, {"task_dependencies"})
    assert (result.indexes_rebuilt, result.foreign_keys_checked) == (keys, fks)


@pytest.mark.parametrize("extra", [
    "COMMENT ON INDEX ix_tasks_tenant_id IS 'kept'",
    "COMMENT ON CONSTRAINT uq_tags_tenant_id_name ON tags IS 'kept'",
    "CLUSTER tasks USING pk_tasks",
    "ALTER TABLE tasks REPLICA IDENTITY USING INDEX uq_tasks_public_id",
    "CREATE INDEX ix_tasks_title ON tasks (lower(title));"
    "ALTER INDEX ix_tasks_title ALTER COLUMN 1 SET STATISTICS 500",
], ids=["index-comment", "constraint-comment", "clustered", "replica-identity", "statistics"])
def test_what_a_definition_cannot_recreate_is_never_dropped(
        extra: str, settings: Settings, conn: psycopg.Connection):
    insert_sample(conn)
    for statement in extra.split(";"):
        conn.execute(statement)
    data, before = table_hashes(conn), schema_lines(conn)
    backup(settings)
    oids = conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index x "
                        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = 'tasks'"
                        ).fetchone()[0]

    result = restore(settings, safety_backup=False)

    assert result.indexes_rebuilt == 0
    assert any(note.startswith("indexes kept during the load (table tasks") or
               note.startswith("indexes kept during the load (table tags")
               for note in result.notes), result.notes
    assert schema_lines(conn) == before
    assert table_hashes(conn) == data
    assert conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index x "
                        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = 'tasks'"
                        ).fetchone()[0] == oids  # the same indexes, not rebuilt ones


def test_the_session_search_path_is_kept(settings: Settings, conn: psycopg.Connection):
    """The definitions are read with search_path = pg_catalog (every name qualified); the
    restore's session gets its own back."""
    insert_sample(conn)
    options = "-c search_path=public,pg_temp"
    with psycopg.connect(settings.database_url, options=options) as other:
        tables = discover_tables(other)
        other.execute("TRUNCATE " + ", ".join(f'public."{t.name}"' for t in tables))
        aside = set_aside(other, [t.name for t in tables])
        assert aside.kept_because is None and aside.definitions
        assert other.execute("SHOW search_path").fetchone()[0] == "public,pg_temp"
        assert all("public." in d.text for d in aside.definitions if d.kind == "index")
        other.rollback()
