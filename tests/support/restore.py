"""Builders and fingerprints for the reset/restore tests: data, backup files, table hashes."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ops.backup.files import backup_filename, utc_now
from ops.backup.format import (
    header_line,
    meta_line,
    open_backup,
    table_close_line,
    table_open_line,
)
from ops.core.catalog import discover_tables

# A small Tasklets dataset that exercises what a restore must keep exactly: jsonb numeric
# digits (22.30), quotes/backslashes/newlines/emoji, arrays, microsecond timestamps, a child
# task whose parent comes later in id order, and explicit ids beyond the identity sequences.
SAMPLE_SQL = r"""
INSERT INTO tenants (id, name, slug, plan, settings) VALUES
  (1, 'SysTech', 'systech', 'enterprise',
   '{"price": 22.30, "nested": {"a": [1, 2.50, "x"], "big": 12345678901234567890123.5}}'),
  (2, 'Other "quoted" tenant', 'other-quoted-tenant', 'free', '{}');
INSERT INTO clients (id, tenant_id, name, email, metadata) VALUES
  (1, 1, 'Acme \ backslash', 'a@acme.test', '{"note": "line\nbreak", "emoji": "🚀"}'),
  (2, 1, 'Beta', NULL, '{}');
INSERT INTO users (id, tenant_id, client_id, email, name, password_hash, user_type, role,
                   last_login_at) VALUES
  (1, 1, NULL, 'admin@systech.test', 'Admin 🚀', 'hash', 'internal', 'admin',
   '2024-01-08 14:30:45.123456+00'),
  (2, 1, 1, 'u@acme.test', E'multi\nline\tname', 'hash', 'client', 'user', NULL);
INSERT INTO teams (id, tenant_id, name) VALUES (1, 1, 'Core');
INSERT INTO team_members (team_id, user_id, role) VALUES (1, 1, 'lead'), (1, 2, 'member');
INSERT INTO products (id, tenant_id, name, metadata) VALUES (1, 1, 'Portal', '{"v": 1e3}');
INSERT INTO client_products (client_id, product_id, licensed_at) VALUES (1, 1, '2024-02-29');
INSERT INTO epics (id, tenant_id, product_id, title, labels, created_by, due_date) VALUES
  (1, 1, 1, 'Epic', '{a,"b c","d\\e",NULL}', 1, '2024-12-31');
INSERT INTO features (id, tenant_id, product_id, epic_id, title) VALUES (1, 1, 1, 1, 'Feature');
INSERT INTO tasks (id, tenant_id, product_id, epic_id, feature_id, title, estimate_minutes,
                   description, metadata, closed_at) VALUES
  (20, 1, 1, 1, 1, 'Parent', 1338, 'quote '' and "double"', '{"weight": 0.10}',
   '2024-03-01 10:00:00.000001+00');
INSERT INTO tasks (id, tenant_id, product_id, parent_task_id, title, estimate_minutes) VALUES
  (10, 1, 1, 20, 'Child before its parent', 90);
INSERT INTO task_dependencies (id, tenant_id, task_id, depends_on_task_id) VALUES (1, 1, 10, 20);
INSERT INTO tickets (id, tenant_id, product_id, client_id, reported_by, title, status) VALUES
  (1, 1, 1, 1, 2, 'Ticket', 'waiting');
INSERT INTO ideas (id, tenant_id, product_id, submitted_by, title, votes) VALUES
  (1, 1, 1, 1, 'Idea', 7);
INSERT INTO tags (id, tenant_id, name, color) VALUES (1, 1, 'bug', '#ff0000'), (2, 1, 'ux', NULL);
INSERT INTO item_tags (id, tag_id, task_id) VALUES (1, 1, 10);
INSERT INTO item_tags (id, tag_id, ticket_id) VALUES (2, 2, 1);
INSERT INTO comments (id, tenant_id, task_id, author_id, body) VALUES (1, 1, 20, 1, 'Looks good');
"""


def insert_sample(conn: psycopg.Connection) -> None:
    conn.execute(SAMPLE_SQL)


def table_hashes(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """(rows, md5 of every row's text in primary-key order) per app table."""
    hashes = {}
    for table in discover_tables(conn):
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), '')) "
            "FROM {} t").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c))
                               for c in table.primary_key or table.column_names),
            table.ident)
        count, digest = conn.execute(query).fetchone()
        hashes[table.name] = (count, digest)
    return hashes


# Everything a migrating restore rebuilds, or a restore sets aside and rebuilds, as lines:
# columns, constraints, indexes (clustered or not, comments), enum labels, owners and grants
# of the public schema, and the revision.
SCHEMA_SQL = """
SELECT format('column %s.%s %s not null %s default %s', c.relname, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
  AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %s.%s %s comment %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid), obj_description(oid, 'pg_constraint'))
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT format('index %s clustered %s comment %s', pg_get_indexdef(indexrelid), indisclustered,
              obj_description(indexrelid, 'pg_class')) FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT format('enum %s %s', t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder))
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname
UNION ALL
SELECT format('owner %s %s %s', relname, pg_get_userbyid(relowner), relacl) FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S')
UNION ALL
SELECT format('revision %s', version_num) FROM alembic_version
ORDER BY 1
"""


def schema_lines(conn: psycopg.Connection) -> list[str]:
    """The public schema as sorted lines (compare two to see what a restore changed)."""
    return [line for (line,) in conn.execute(SCHEMA_SQL)]


def marker(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT key, value FROM ops_metadata ORDER BY key").fetchall()


def write_line_backup(path: Path, tables: dict[str, list[Any]], *, meta: dict | None = None,
                      revision: str | None = None, compress: bool = False,
                      raw_rows: dict[str, list[str]] | None = None) -> Path:
    """A file in our line layout (ops.backup.format), with meta and checksums.

    `raw_rows` gives row lines verbatim (for malformed rows); `meta` overrides meta fields.
    """
    lines = {name: [json.dumps(r, ensure_ascii=False) for r in rows]
             for name, rows in tables.items()}
    lines.update(raw_rows or {})
    body = [header_line("2024-01-08T14:30:45.123Z")]
    names = list(lines)
    for index, name in enumerate(names):
        body.append(table_open_line(name))
        body.append(b",\n".join(line.encode() for line in lines[name]))
        if lines[name]:
            body.append(b"\n")
        body.append(table_close_line(last=index == len(names) - 1))
    body.append(b"},\n")
    full_meta = {
        "tool": "tasklets-ops", "alembicRevision": revision, "tables": names,
        "rowCounts": {n: len(lines[n]) for n in names},
        "sha256": {n: hashlib.sha256("".join(f"{line}\n" for line in lines[n]).encode())
                   .hexdigest() for n in names},
        "totalRows": sum(len(v) for v in lines.values()),
    }
    full_meta.update(meta or {})
    body.append(meta_line(full_meta))
    data = b"".join(body)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_seed_file(path: Path, tables: dict[str, list[dict]], *, camel: bool = True) -> Path:
    """A file as the seed tool writes it: pretty-printed, no meta."""
    from ops.backup.format import camel_case

    if camel:
        tables = {n: [{camel_case(k): v for k, v in r.items()} for r in rows]
                  for n, rows in tables.items()}
    doc = {"timestamp": "2024-01-08T14:30:45.123Z", "version": "1.0", "tables": tables}
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return path


def backup_name(compression: str | None = None) -> str:
    return backup_filename(utc_now(), compression=compression)


def read_lines(path: Path) -> list[bytes]:
    with open_backup(path) as fh:
        return fh.read().splitlines(keepends=True)
