"""Indexes and keys set aside for a restore's load and rebuilt after it (ops.core.indexes):
the schema comes back exactly as it was - every index, constraint, name and option - whether
the restore commits or fails, and what its definition cannot recreate is never dropped."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from support.restore import insert_sample, table_hashes, write_line_backup

from ops.backup.create import backup
from ops.core.catalog import current_revision
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

# Everything about the app schema's indexes and constraints a restore could change.
_SCHEMA_SQL = """
SELECT 'index', t.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisclustered::text,
       coalesce(obj_description(x.indexrelid, 'pg_class'), '')
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'constraint', t.relname, c.conname, pg_get_constraintdef(c.oid),
       concat_ws(' ', c.condeferrable, c.condeferred, c.convalidated),
       coalesce(obj_description(c.oid, 'pg_constraint'), '')
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'
ORDER BY 1, 2, 3
"""


def schema(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(_SCHEMA_SQL).fetchall()


def _counts(rows: list[tuple], tables: set[str]) -> tuple[int, int]:
    """(indexes and keys, foreign keys) of `tables` in a schema snapshot."""
    rows = [r for r in rows if r[1] in tables]
    fks = sum(1 for r in rows if r[0] == "constraint" and r[3].startswith("FOREIGN KEY"))
    keys = sum(1 for r in rows if r[0] == "index")  # every key constraint has its index
    return keys, fks


@pytest.fixture
def owner_settings(owner_db_url: str, backup_dir: Path) -> Settings:
    return Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")


@pytest.mark.parametrize("role", ["superuser", "owner"])
def test_restore_rebuilds_every_index_and_key_as_it_was(
        role: str, settings: Settings, owner_settings: Settings):
    settings = settings if role == "superuser" else owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_sample(conn)
        data, before = table_hashes(conn), schema(conn)
        backup(settings)

        result = restore(settings, safety_backup=False)

        assert schema(conn) == before
        assert table_hashes(conn) == data
    keys, fks = _counts(before, set(result.tables) | set(result.emptied))
    assert (result.indexes_rebuilt, result.foreign_keys_checked) == (keys, fks)
    assert fks > 40 and keys > 80


def test_a_failed_restore_leaves_every_index_in_place(settings: Settings,
                                                      conn: psycopg.Connection):
    insert_sample(conn)
    data, before = table_hashes(conn), schema(conn)
    path = write_line_backup(settings.backup_dir / "dangling.json", {
        "tenants": [{"id": 1, "name": "T", "plan": "free", "settings": {},
                     "createdAt": "2024-01-01T00:00:00+00:00",
                     "updatedAt": "2024-01-01T00:00:00+00:00", "slug": "t"}],
        "tags": [{"id": 1, "tenantId": 99, "name": "x", "color": None, "description": None,
                  "createdAt": "2024-01-01T00:00:00+00:00"}],
    }, revision=current_revision(conn))

    with pytest.raises(OpsError, match=r"table tags row id=1: tenant_id=99 points to a "
                       r"missing tenants row .*fk_tags_tenant_id_tenants"):
        restore(settings, path.name, safety_backup=False)

    assert schema(conn) == before
    assert table_hashes(conn) == data


def test_only_listed_tables_rebuilds_theirs_and_keeps_the_others(
        settings: Settings, conn: psycopg.Connection):
    insert_sample(conn)
    data, before = table_hashes(conn), schema(conn)
    rows = conn.execute("SELECT json_agg(t ORDER BY t.id) FROM task_dependencies t"
                        ).fetchone()[0]
    assert rows, "the sample has task dependencies"
    path = write_line_backup(settings.backup_dir / "deps.json", {"task_dependencies": rows},
                             revision=current_revision(conn))

    result = restore(settings, path.name, only_listed_tables=True, safety_backup=False)

    assert schema(conn) == before
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
    data, before = table_hashes(conn), schema(conn)
    backup(settings)
    oids = conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index x "
                        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = 'tasks'"
                        ).fetchone()[0]

    result = restore(settings, safety_backup=False)

    assert result.indexes_rebuilt == 0
    assert any(note.startswith("indexes kept during the load (table tasks") or
               note.startswith("indexes kept during the load (table tags")
               for note in result.notes), result.notes
    assert schema(conn) == before
    assert table_hashes(conn) == data
    assert conn.execute("SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index x "
                        "JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = 'tasks'"
                        ).fetchone()[0] == oids  # the same indexes, not rebuilt ones


def test_the_session_search_path_is_kept(settings: Settings, conn: psycopg.Connection):
    """The definitions are read with search_path = pg_catalog (every name qualified); the
    restore's session gets its own back."""
    insert_sample(conn)
    backup(settings)
    options = "-c search_path=public,pg_temp"
    with psycopg.connect(settings.database_url, options=options) as other:
        from ops.core.catalog import discover_tables
        from ops.core.indexes import set_aside

        tables = discover_tables(other)
        other.execute("TRUNCATE " + ", ".join(f'public."{t.name}"' for t in tables))
        aside = set_aside(other, [t.name for t in tables])
        assert aside.kept_because is None and aside.definitions
        assert other.execute("SHOW search_path").fetchone()[0] == "public,pg_temp"
        assert all("public." in d.text for d in aside.definitions if d.kind == "index")
        other.rollback()
