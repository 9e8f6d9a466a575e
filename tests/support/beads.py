"""Builders for the beads import tests: the SysTech tenant, a product, a user, snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from ops.beads.importer import BeadsImportResult, ImportOptions, import_beads
from ops.core.config import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "beads"


def make_systech(conn: psycopg.Connection, product: str = "Tasklets") -> tuple[int, int]:
    """The SysTech tenant, `product` and the user Ramesh (matched by email or name)."""
    tenant = conn.execute(
        "INSERT INTO tenants (name, slug) VALUES ('SysTech', 'systech') RETURNING id").fetchone()[0]
    product_id = conn.execute(
        "INSERT INTO products (tenant_id, name) VALUES (%s, %s) RETURNING id",
        (tenant, product)).fetchone()[0]
    conn.execute("INSERT INTO users (tenant_id, email, name, password_hash, role)"
                 " VALUES (%s, 'ramesh@systech.com', 'Ramesh', 'x', 'admin')", (tenant,))
    return tenant, product_id


def run_import(settings: Settings, name: str | Path, **options: Any) -> BeadsImportResult:
    path = name if isinstance(name, Path) else FIXTURES / name
    return import_beads(settings, ImportOptions(file=path, **options))


def write_jsonl(path: Path, *objects: dict[str, Any] | str) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n"
                            for o in objects))
    return path


def counts(result: BeadsImportResult) -> dict[str, tuple[int, int, int, int, int]]:
    """kind -> (created, updated, unchanged, skipped, removed)."""
    return {kind: (c.created, c.updated, c.unchanged, c.skipped, c.removed)
            for kind, c in result.counts.items()}


def item(conn: psycopg.Connection, kind: str, external_id: str) -> dict[str, Any] | None:
    cur = conn.execute(f"SELECT * FROM {kind}s WHERE external_id = %s", (external_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d.name for d in cur.description], row, strict=True))


def tags_of(conn: psycopg.Connection, kind: str, external_id: str) -> set[str]:
    return {r[0] for r in conn.execute(
        f"SELECT g.name FROM item_tags it JOIN tags g ON g.id = it.tag_id"
        f" JOIN {kind}s x ON x.id = it.{kind}_id WHERE x.external_id = %s", (external_id,))}


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Every row the import writes, for before/after comparisons."""
    tables = ("epics", "features", "tasks", "tags", "item_tags", "comments",
              "task_dependencies")
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in tables}


def dependencies(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return set(conn.execute(
        "SELECT a.external_id, b.external_id, d.dependency_type FROM task_dependencies d"
        " JOIN tasks a ON a.id = d.task_id JOIN tasks b ON b.id = d.depends_on_task_id"
    ).fetchall())
