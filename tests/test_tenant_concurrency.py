"""Other tenants keep working while one tenant is restored or reset.

At every step of Globex's restore - from inside the restore, while its transaction holds
every lock it takes - another session writes to SysTech: inserts into every kind of table,
updates, deletes, a new tenant. Each write runs with a lock_timeout, so a write that had to
wait for the restore fails (it could never go through: the restore cannot commit until the
write returns). A write to Globex at the same moment does wait, which shows the detector
works.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from support.tenants import (
    GLOBEX,
    SYSTECH,
    change_both_tenants,
    insert_two_tenants,
    tenant_counts,
    tenant_hashes,
)

from ops.backup.create import backup
from ops.core.config import Settings
from ops.core.db import first_line
from ops.core.output import Reporter
from ops.restore.tenant import reset_tenant, restore_tenant

# A write to SysTech touching every kind of table and key; {n} keeps names unique per step.
SYSTECH_WRITES = """
INSERT INTO tasks (tenant_id, product_id, parent_task_id, title) VALUES (1, 1, 20, 'step {n}');
INSERT INTO comments (tenant_id, task_id, author_id, body) VALUES (1, 10, 1, 'step {n}');
INSERT INTO tags (tenant_id, name) VALUES (1, 'step-{n}');
INSERT INTO item_tags (tag_id, task_id) SELECT id, 20 FROM tags WHERE name = 'step-{n}';
INSERT INTO users (tenant_id, email, name, password_hash, role)
  VALUES (1, 'step{n}@systech.test', 'Step {n}', 'hash', 'developer');
INSERT INTO team_members (team_id, user_id)
  SELECT 1, id FROM users WHERE email = 'step{n}@systech.test';
INSERT INTO client_products (client_id, product_id, licensed_at)
  VALUES (2, 1, '2024-01-01') ON CONFLICT DO NOTHING;
UPDATE tasks SET title = title || '+' WHERE id = 20;
UPDATE tenants SET plan = 'plan {n}' WHERE id = 1;
UPDATE users SET last_login_at = now() WHERE id = 1;
DELETE FROM comments WHERE id = (SELECT min(id) FROM comments WHERE body LIKE 'step %');
INSERT INTO tenants (name, slug) VALUES ('Tenant created at step {n}', 'step-{n}');
"""
GLOBEX_WRITE = "UPDATE tasks SET title = 'during the restore' WHERE id = 5"


class WriteToOthersAtEveryStep(Reporter):
    """A quiet reporter that writes to SysTech, from its own session, at every step."""

    def __init__(self, url: str) -> None:
        super().__init__(quiet=True)
        self.writer = psycopg.connect(url, autocommit=True)
        self.writer.execute("SET lock_timeout = '5s'")
        self.steps: list[str] = []
        self.waited: list[str] = []
        self.globex_waited = False

    def line(self, text: str = "") -> None:
        step = len(self.steps) + len(self.waited)
        try:
            with self.writer.transaction():
                self.writer.execute(SYSTECH_WRITES.format(n=step))
            self.steps.append(text)
        except psycopg.errors.LockNotAvailable as exc:
            self.waited.append(f"{text} -> {first_line(exc)}")
        if text.startswith("⚙️  Re-enabling"):  # everything deleted and loaded, not committed
            try:
                self.writer.execute(GLOBEX_WRITE)
            except psycopg.errors.LockNotAvailable:
                self.globex_waited = True

    def close(self) -> None:
        self.writer.close()


def run_with_writers(url: str, action) -> WriteToOthersAtEveryStep:
    writers = WriteToOthersAtEveryStep(url)
    try:
        action(writers)
    finally:
        writers.close()
    return writers


@pytest.mark.parametrize("role", ["superuser", "table owner"])
def test_writes_to_other_tenants_never_wait_for_a_tenant_restore(
        settings: Settings, owner_db_url: str, backup_dir: Path, role: str):
    if role == "table owner":
        settings = Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_two_tenants(conn)
        made = backup(settings, tenant="Globex")
        globex = tenant_hashes(conn, GLOBEX)
        change_both_tenants(conn)
        tasks_before = tenant_counts(conn, SYSTECH)["tasks"]

        writers = run_with_writers(settings.database_url, lambda report: restore_tenant(
            settings, made.path, "Globex", report=report))

        assert writers.waited == []
        assert len(writers.steps) > 20  # every staged table, lock, delete, load, check...
        assert writers.globex_waited  # a write to the tenant being restored does wait
        assert tenant_hashes(conn, GLOBEX) == globex
        assert tenant_counts(conn, SYSTECH)["tasks"] == tasks_before + len(writers.steps)


def test_writes_to_other_tenants_never_wait_for_a_tenant_reset(settings: Settings, conn):
    insert_two_tenants(conn)

    writers = run_with_writers(settings.database_url, lambda report: reset_tenant(
        settings, "Globex", confirm=True, report=report))

    assert writers.waited == [] and len(writers.steps) > 10
    assert sum(tenant_counts(conn, GLOBEX).values()) == 0
