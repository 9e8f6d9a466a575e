"""`seed sample --scale N`: deterministic, consistent, streamed volume data."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.schema.migrate import push
from ops.seed.builtin import run_seeds
from ops.seed.helpers import find_systech_tenant
from ops.seed.volume import generate_volume
from ops.seed.volume_rows import STREAMS, Plan

SCALE = 0.05  # ~1,500 rows: every table, in a second or two
VOLUME_TABLES = [table for table, *_ in STREAMS]


def seed_volume(url: str, tmp_path: Path, *, scale: float = SCALE, random_seed: int = 7):
    """Lookups, then volume data for the SysTech tenant, committed."""
    run_seeds(Settings(database_url=url, backup_dir=tmp_path), lookups=True, sample=False)
    with psycopg.connect(url) as conn:
        return generate_volume(conn, find_systech_tenant(conn), scale=scale,
                               random_seed=random_seed)


def table_digests(url: str) -> dict[str, str]:
    """md5 of every row of every volume table, in primary-key order."""
    digests = {}
    with psycopg.connect(url) as conn:
        for table in VOLUME_TABLES:
            pk = [r[0] for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
                " ORDER BY a.attname", (table,))]
            query = sql.SQL("SELECT md5(string_agg(t::text, '|' ORDER BY {})) FROM {} t").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in pk), sql.Identifier(table))
            digests[table] = conn.execute(query).fetchone()[0]
    return digests


def fk_constraints(conn: psycopg.Connection) -> set[tuple[str, str]]:
    return set(conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"
        " AND connamespace = 'public'::regnamespace").fetchall())


@pytest.fixture
def second_db_url(empty_db_url: str, tmp_path: Path) -> str:
    push(Settings(database_url=empty_db_url, backup_dir=tmp_path))
    return empty_db_url


def test_same_random_seed_gives_identical_data(db_url, second_db_url, tmp_path):
    seed_volume(db_url, tmp_path, random_seed=7)
    seed_volume(second_db_url, tmp_path, random_seed=7)
    first, second = table_digests(db_url), table_digests(second_db_url)
    assert all(first.values())
    assert first == second


def test_another_random_seed_gives_other_data(db_url, second_db_url, tmp_path):
    seed_volume(db_url, tmp_path, random_seed=7)
    seed_volume(second_db_url, tmp_path, random_seed=8)
    first, second = table_digests(db_url), table_digests(second_db_url)
    assert first["tasks"] != second["tasks"] and first["comments"] != second["comments"]


def test_row_counts_follow_the_plan(db_url, conn, tmp_path):
    result = seed_volume(db_url, tmp_path)
    plan = Plan.for_scale(SCALE)
    assert result.rows["tasks"] == plan.tasks == 500
    assert result.rows["features"] == plan.features == 50
    assert result.rows["epics"] == plan.epics == 10
    assert result.rows["users"] == plan.users
    assert result.rows["item_tags"] == plan.epics + plan.tasks
    for table, rows in result.rows.items():
        assert rows > 0, table
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(table))).fetchone()[0] == rows


def test_unit_scale_plan_matches_the_documented_volume():
    plan = Plan.for_scale(1)
    assert (plan.clients, plan.users, plan.products, plan.epics, plan.features, plan.tasks) \
        == (10, 50, 20, 200, 1_000, 10_000)


def test_references_are_consistent_and_constraints_restored(db_url, conn, tmp_path):
    before = fk_constraints(conn)
    seed_volume(db_url, tmp_path)
    assert fk_constraints(conn) == before  # dropped for the load, re-added (and validated)
    checks = {
        "task in another product than its feature": "SELECT count(*) FROM tasks t JOIN features f"
        " ON f.id = t.feature_id WHERE t.product_id <> f.product_id OR t.epic_id <> f.epic_id",
        "feature in another product than its epic": "SELECT count(*) FROM features f JOIN epics"
        " e ON e.id = f.epic_id WHERE f.product_id <> e.product_id",
        "subtask outside its parent's feature": "SELECT count(*) FROM tasks t JOIN tasks p"
        " ON p.id = t.parent_task_id WHERE p.feature_id <> t.feature_id",
        "ticket for a product its client does not license": "SELECT count(*) FROM tickets t"
        " LEFT JOIN client_products cp ON cp.client_id = t.client_id"
        " AND cp.product_id = t.product_id WHERE cp.client_id IS NULL",
        "ticket reported by another client's user": "SELECT count(*) FROM tickets t JOIN users u"
        " ON u.id = t.reported_by WHERE u.client_id IS DISTINCT FROM t.client_id",
        "dependency on itself or a later task": "SELECT count(*) FROM task_dependencies"
        " WHERE depends_on_task_id >= task_id",
    }
    for what, query in checks.items():
        assert conn.execute(query).fetchone()[0] == 0, what
    subtasks = conn.execute("SELECT count(*) FROM tasks WHERE parent_task_id IS NOT NULL")
    assert subtasks.fetchone()[0] > 0


def test_rows_look_realistic(db_url, conn, tmp_path):
    seed_volume(db_url, tmp_path)
    avg_len, with_labels, with_estimate, with_due = conn.execute(
        "SELECT avg(length(description)), count(*) FILTER (WHERE cardinality(labels) > 0),"
        " count(*) FILTER (WHERE estimate_minutes % 15 = 0),"
        " count(*) FILTER (WHERE due_date IS NOT NULL) FROM tasks").fetchone()
    assert 150 < avg_len < 600
    assert with_labels > 0 and with_estimate > 0 and with_due > 0
    assert conn.execute("SELECT count(*) FROM tasks WHERE metadata ? 'story_points'"
                        ).fetchone()[0] == 500
    assert conn.execute("SELECT count(DISTINCT public_id) FROM tasks").fetchone()[0] == 500


def test_volume_users_share_one_valid_bcrypt_hash(db_url, conn, tmp_path):
    seed_volume(db_url, tmp_path)
    hashes = {r[0] for r in conn.execute("SELECT password_hash FROM users")}
    assert len(hashes) == 1
    stored = hashes.pop()
    assert stored.startswith("$2b$10$")
    assert bcrypt.checkpw(SAMPLE_PASSWORD.encode(), stored.encode())


def test_identities_continue_after_the_generated_ids(db_url, conn, tmp_path):
    seed_volume(db_url, tmp_path)
    max_id = conn.execute("SELECT max(id) FROM clients").fetchone()[0]
    new_id = conn.execute("INSERT INTO clients (tenant_id, name) VALUES (1, 'after')"
                          " RETURNING id").fetchone()[0]
    assert new_id > max_id


def test_second_run_appends_new_rows(db_url, conn, tmp_path):
    first = seed_volume(db_url, tmp_path)
    with psycopg.connect(db_url) as c:
        second = generate_volume(c, 1, scale=SCALE, random_seed=7)
    assert second.rows == first.rows
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 2 * first.rows["tasks"]


def test_failure_mid_load_rolls_everything_back_with_constraints(db_url, conn, tmp_path):
    run_seeds(Settings(database_url=db_url, backup_dir=tmp_path), lookups=True, sample=False)
    before = fk_constraints(conn)
    conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'comments are closed'; END $$")
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON comments "
                 "FOR EACH ROW EXECUTE FUNCTION refuse()")
    with psycopg.connect(db_url) as c, pytest.raises(psycopg.errors.RaiseException):
        generate_volume(c, 1, scale=SCALE)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    assert fk_constraints(conn) == before
    conn.execute("DROP TRIGGER refuse ON comments")
    with psycopg.connect(db_url) as c:  # and a retry starts cleanly
        assert generate_volume(c, 1, scale=SCALE).rows["comments"] > 0


def fk_oids(conn: psycopg.Connection, table: str) -> set[int]:
    return {r[0] for r in conn.execute(
        "SELECT oid FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
        (table,))}


def test_small_load_into_large_tables_keeps_constraints_in_place(db_url, conn, tmp_path):
    seed_volume(db_url, tmp_path)  # tables were empty: constraints dropped and re-added
    conn.execute("ANALYZE")
    before = fk_oids(conn, "tasks")
    # 10 tasks onto 500: ten trigger checks beat re-validating all 510 rows.
    with psycopg.connect(db_url) as c:
        result = generate_volume(c, 1, scale=0.001)
    assert result.rows["tasks"] == 10
    assert fk_oids(conn, "tasks") == before


def test_large_load_swaps_constraints_for_validated_copies(db_url, conn, tmp_path):
    before = fk_oids(conn, "tasks")
    seed_volume(db_url, tmp_path)
    after = fk_oids(conn, "tasks")
    assert len(after) == len(before) and after != before


def test_non_owner_role_loads_with_constraints_in_place(db_url, conn, tmp_path):
    run_seeds(Settings(database_url=db_url, backup_dir=tmp_path), lookups=True, sample=False)
    conn.execute("DO $$ BEGIN CREATE ROLE seed_writer LOGIN; "
                 "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    conn.execute("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO seed_writer")
    conn.execute("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seed_writer")
    before = fk_constraints(conn)
    with psycopg.connect(make_conninfo(db_url, user="seed_writer")) as c:
        result = generate_volume(c, 1, scale=SCALE)
    assert result.rows["tasks"] == 500
    assert fk_constraints(conn) == before


def test_owner_role_without_superuser_can_generate(owner_db_url, tmp_path):
    result = seed_volume(owner_db_url, tmp_path)
    assert result.rows["comments"] == Plan.for_scale(SCALE).comments


def test_scale_must_be_positive(conn):
    with pytest.raises(OpsError, match="greater than 0"):
        generate_volume(conn, 1, scale=0)


def test_cli_sample_with_scale_reports_volume(run_cli, conn):
    assert run_cli("seed", "lookups").returncode == 0
    result = run_cli("seed", "sample", "--scale", "0.02", "--random-seed", "3")
    assert result.returncode == 0, result.stderr
    assert "📈 Generating volume data: scale 0.02, random seed 3..." in result.stdout
    assert "✅ tasks: 200 rows" in result.stdout
    assert "📊 Volume data:" in result.stdout
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 200 + 6  # + sample


def test_cli_rejects_negative_scale(run_cli):
    result = run_cli("seed", "sample", "--scale", "-1")
    assert result.returncode == 2
