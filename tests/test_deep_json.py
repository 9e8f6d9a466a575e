"""jsonb nested far deeper than any JSON library's default limits: whatever PostgreSQL stores,
a backup writes, `verify` approves and a restore puts back exactly."""

from __future__ import annotations

import json
from unittest.mock import ANY

import psycopg
import pytest

from ops.backup.create import backup
from ops.backup.deep_json import RawJson, depth_of, is_deep, loads_deep_row
from ops.backup.verify import verify_backup
from ops.core.config import Settings
from ops.restore.apply import restore


def nested(depth: int) -> str:
    """JSON text `depth` levels deep, arrays and objects alternating, with an exact decimal
    and a JSON null at the bottom (both take the restore's slower, exact path)."""
    opening = "".join('{"k": [' if level % 2 else "[" for level in range(depth // 2))
    closing = "".join("]}" if level % 2 else "]" for level in reversed(range(depth // 2)))
    return opening + '22.30, null, "deep"' + closing


def _rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, metadata::text, md5(metadata::text) FROM clients "
                        "ORDER BY id").fetchall()


@pytest.mark.parametrize("depth", [500, 1000, 1300, 10_000])
def test_deeply_nested_jsonb_backs_up_verifies_and_restores(settings: Settings, conn, depth):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('T', 't')")
    conn.execute("INSERT INTO clients (tenant_id, name, metadata) SELECT id, 'deep', %s::jsonb "
                 "FROM tenants UNION ALL SELECT id, 'flat', '{\"a\": 1.50}' FROM tenants",
                 (nested(depth),))
    before = _rows(conn)
    result = backup(settings)
    checked = verify_backup(result.path)
    assert checked.ok, checked.errors
    assert checked.tables["clients"] == 2
    conn.execute("UPDATE clients SET metadata = '{}'")
    restore(settings, result.path, safety_backup=False)
    assert _rows(conn) == before


def test_deep_rows_are_split_into_fields_without_recursion():
    text = '{"a": 1.5, "b": ' + "[" * 5000 + '"]}[", null' + "]" * 5000 + ', "c": {"d": []}}'
    assert is_deep(text.encode()) and depth_of(text) == 5001
    row = loads_deep_row(text.encode(), json.loads)
    assert row["a"] == 1.5 and row["c"] == {"d": []}
    assert isinstance(row["b"], RawJson) and row["b"].text == text[16:text.rindex(', "c"')]
    assert RawJson('[1, null, [[2]], "a,]"]').elements()[1:] == [None, ANY, ANY]
    assert not is_deep(b'{"a": "' + b"[" * 1000 + b'"}')  # brackets in a string


@pytest.mark.parametrize("bad", ['{"a": 1,}', '{"a": [1}', '{"a": 1} x', '{"a" 1}', "[1]",
                                 '{"a": ' + "[" * 200 + "]" * 199 + "}"])
def test_a_malformed_deep_row_is_a_value_error(bad):
    with pytest.raises(ValueError):
        loads_deep_row(bad.encode(), json.loads)


def test_a_value_too_deep_to_anonymize_fails_the_snapshot_and_writes_nothing(
        settings: Settings, conn):
    from dataclasses import replace

    from ops.anonymize.policy import load_policy
    from ops.core.errors import OpsError
    from ops.seed.builtin import run_seeds

    salted = replace(settings, anonymize_salt="test-salt-0123456789abcdef")
    run_seeds(salted, lookups=True, sample=True)
    conn.execute("UPDATE tasks SET metadata = %s::jsonb WHERE id = (SELECT min(id) FROM tasks)",
                 (nested(3000),))
    with pytest.raises(OpsError) as refused:
        backup(salted, output=settings.backup_dir / "snap.json", anonymize=load_policy())
    assert "nested too deeply" in refused.value.message
    assert list(settings.backup_dir.iterdir()) == []
