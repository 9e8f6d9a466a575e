"""Two tenants with data, made without the tenant commands: SysTech from the restore tests'
sample (support.restore), Globex from plain SQL below plus the volume seed; and per-tenant
fingerprints."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ops.core.catalog import discover_tables
from ops.core.tenancy import tenant_scope
from ops.seed.volume import generate_volume
from support.restore import insert_sample

SYSTECH, GLOBEX = 1, 3

# Globex: a row in every table, ids between SysTech's (tasks 5 and 15 around its 10 and 20),
# names SysTech also uses (unique per tenant only), a child task before its parent, and
# references between Globex's rows through every kind of key.
GLOBEX_SQL = r"""
INSERT INTO tenants (id, name, slug, plan, settings) VALUES
  (3, 'Globex', 'globex', 'pro', '{"seats": 12.50}');
INSERT INTO clients (id, tenant_id, name, email) VALUES
  (3, 3, 'Initech', 'it@initech.test'), (4, 3, 'Hooli', NULL);
INSERT INTO users (id, tenant_id, client_id, email, name, password_hash, user_type, role) VALUES
  (3, 3, NULL, 'hank@globex.test', 'Hank', 'hash', 'internal', 'admin'),
  (4, 3, 3, 'peter@initech.test', 'Peter', 'hash', 'client', 'user');
INSERT INTO teams (id, tenant_id, name) VALUES (2, 3, 'Core');
INSERT INTO team_members (team_id, user_id, role) VALUES (2, 3, 'lead'), (2, 4, 'member');
INSERT INTO products (id, tenant_id, name) VALUES (2, 3, 'Portal');
INSERT INTO client_products (client_id, product_id, licensed_at) VALUES
  (3, 2, '2024-03-01'), (4, 2, NULL);
INSERT INTO epics (id, tenant_id, product_id, title, labels, created_by) VALUES
  (2, 3, 2, 'Globex epic', '{x,"y z"}', 3);
INSERT INTO features (id, tenant_id, product_id, epic_id, title) VALUES
  (2, 3, 2, 2, 'Globex feature');
INSERT INTO tasks (id, tenant_id, product_id, epic_id, feature_id, title, estimate_minutes,
                   metadata) VALUES
  (15, 3, 2, 2, 2, 'Globex parent', 195, '{"w": 0.10}');
INSERT INTO tasks (id, tenant_id, product_id, parent_task_id, title, assignee_id) VALUES
  (5, 3, 2, 15, 'Globex child', 4);
INSERT INTO task_dependencies (id, tenant_id, task_id, depends_on_task_id) VALUES (2, 3, 5, 15);
INSERT INTO tickets (id, tenant_id, product_id, client_id, reported_by, title) VALUES
  (2, 3, 2, 3, 4, 'Globex ticket');
INSERT INTO ideas (id, tenant_id, product_id, submitted_by, title) VALUES (2, 3, 2, 3, 'Idea');
INSERT INTO tags (id, tenant_id, name) VALUES (3, 3, 'bug'), (4, 3, 'globex');
INSERT INTO item_tags (id, tag_id, task_id) VALUES (3, 3, 5);
INSERT INTO item_tags (id, tag_id, epic_id) VALUES (4, 4, 2);
INSERT INTO comments (id, tenant_id, ticket_id, author_id, body) VALUES
  (2, 3, 2, 4, 'Globex comment');
"""

# Tables the membership rules cannot place.
UNPLACEABLE_SQL = """
CREATE TABLE audit_log (id bigint PRIMARY KEY, note text);
-- a nullable key cannot place the rows where it is NULL
CREATE TABLE reminders (id bigint PRIMARY KEY, task_id bigint REFERENCES tasks (id));
"""


def insert_two_tenants(conn: psycopg.Connection, *, volume: float = 0.02) -> None:
    """SysTech (id 1, the sample), an empty tenant (id 2), Globex (id 3) with `volume` units
    of the volume seed on top; identities moved past every id."""
    insert_sample(conn)
    conn.execute(GLOBEX_SQL)
    if volume:
        with conn.transaction():
            generate_volume(conn, GLOBEX, scale=volume)
    sync_sequences(conn)


def sync_sequences(conn: psycopg.Connection) -> None:
    """Every identity past the highest id, as an app inserting with explicit ids would leave
    it (the fixtures insert explicit ids)."""
    for table in discover_tables(conn):
        if "id" in table.column_names:
            conn.execute(sql.SQL(
                "SELECT setval(s, greatest(max(id), 1)) FROM {}, "
                "pg_get_serial_sequence({}, 'id') s WHERE s IS NOT NULL GROUP BY s").format(
                table.ident, sql.Literal(f"public.{table.name}")))


def tenant_hashes(conn: psycopg.Connection, tenant_id: int) -> dict[str, tuple[int, str]]:
    """(rows, md5 of their text in primary-key order) per table, of one tenant's rows."""
    tables = discover_tables(conn)
    scope = tenant_scope(tables)
    hashes = {}
    for table in tables:
        order = sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c))
                                   for c in table.primary_key or table.column_names)
        count, digest = conn.execute(sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY {}), '')) "
            "FROM {} x WHERE {}").format(order, table.ident,
                                         scope.rows(table.name, tenant_id))).fetchone()
        hashes[table.name] = (count, digest)
    return hashes


def tenant_counts(conn: psycopg.Connection, tenant_id: int) -> dict[str, int]:
    return {name: rows for name, (rows, _) in tenant_hashes(conn, tenant_id).items()}


def change_both_tenants(conn: psycopg.Connection) -> None:
    """Edits, deletions and new rows in both tenants, through every kind of table."""
    conn.execute("""
        UPDATE tasks SET title = title || ' (edited)' WHERE tenant_id IN (1, 3);
        UPDATE tenants SET plan = 'changed' WHERE id IN (1, 3);
        DELETE FROM item_tags WHERE tag_id IN (1, 3);
        DELETE FROM comments WHERE id IN (SELECT id FROM comments WHERE tenant_id = 3
                                          ORDER BY id LIMIT 10);
        DELETE FROM team_members WHERE team_id = 2 AND user_id = 4;
        INSERT INTO tags (tenant_id, name) VALUES (1, 'new-systech'), (3, 'new-globex');
        INSERT INTO item_tags (tag_id, task_id)
          SELECT id, 15 FROM tags WHERE name = 'new-globex';
        INSERT INTO tasks (tenant_id, product_id, title) VALUES (1, 1, 'new SysTech task'),
                                                                (3, 2, 'new Globex task');
        INSERT INTO comments (tenant_id, task_id, body)
          SELECT 3, id, 'on the new task' FROM tasks WHERE title = 'new Globex task';
    """)
