"""Built-in seeds: lookups, sample, the legacy aliases and `fresh`, against a real PostgreSQL."""

from __future__ import annotations

import json

import bcrypt
import psycopg
import pytest

from ops.core.catalog import discover_tables, row_counts
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.seed.builtin import run_seeds
from ops.seed.data import CLIENTS, LOOKUP_TAGS, PRODUCTS, USERS
from ops.seed.helpers import get_or_create, hash_password


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return row_counts(conn, discover_tables(conn))


def test_lookups_create_systech_tenant_and_18_tags(settings: Settings, conn):
    result = run_seeds(settings, lookups=True, sample=False)
    assert result.lookups.tenant_created and result.lookups.tags.created == 18
    assert conn.execute("SELECT name, plan, slug FROM tenants").fetchall() == [
        ("SysTech", "enterprise", "systech")]
    names = {r[0] for r in conn.execute("SELECT name FROM tags")}
    assert len(LOOKUP_TAGS) == 18
    assert names == {name for name, _, _ in LOOKUP_TAGS}
    assert {"system-prompt", "template", "workflow", "skill", "hook"} <= names


def test_lookups_twice_creates_nothing_and_says_so(run_cli, conn):
    first = run_cli("seed", "lookups")
    assert first.returncode == 0, first.stderr
    assert "🏢 Creating SysTech tenant..." in first.stdout
    assert "✅ Created tenant: SysTech (ID: 1)" in first.stdout
    assert "✅ Created tag: system-prompt" in first.stdout
    assert "✅ Lookup tables seeded!" in first.stdout
    assert "📊 Tags created: 18/18\n" in first.stdout
    before = counts(conn)
    second = run_cli("seed", "lookups")
    assert second.returncode == 0, second.stderr
    assert "✅ Using existing tenant: SysTech (ID: 1)" in second.stdout
    assert "📊 Tags created: 0/18 (18 already present)" in second.stdout
    assert counts(conn) == before


def test_sample_without_lookups_fails_with_one_line_and_writes_nothing(run_cli, conn):
    result = run_cli("seed", "sample")
    assert result.returncode == 1
    assert "seed lookups" in result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr
    assert sum(counts(conn).values()) == 0


def test_sample_fills_every_table(settings: Settings, conn):
    run_seeds(settings, lookups=True, sample=True)
    table_counts = counts(conn)
    assert all(n > 0 for n in table_counts.values()), table_counts
    assert table_counts["clients"] == len(CLIENTS) == 3
    assert table_counts["products"] == len(PRODUCTS) == 4
    assert table_counts["users"] == len(USERS) == 8
    assert table_counts["teams"] == 4 and table_counts["ideas"] == 3
    assert {r[0] for r in conn.execute("SELECT name FROM clients")} == \
        {"Acme Corp", "TechCorp Inc", "StartupXYZ"}
    assert {r[0] for r in conn.execute("SELECT name FROM products")} == \
        {"Tasklets", "CRM Sales", "SDMS v2", "HRM v2"}


def test_sample_users_have_their_roles_and_clients(settings: Settings, conn):
    run_seeds(settings, lookups=True, sample=True)
    rows = conn.execute(
        "SELECT u.email, u.role::text, u.user_type::text, c.name FROM users u"
        " LEFT JOIN clients c ON c.id = u.client_id").fetchall()
    got = {email: (role, kind, client) for email, role, kind, client in rows}
    assert got["ramesh@systech.com"] == ("admin", "internal", None)
    assert got["john@systech.com"] == ("developer", "internal", None)
    assert got["sarah@systech.com"] == ("support", "internal", None)
    assert got["mike@systech.com"] == ("company_admin", "internal", None)
    assert got["john@acme.com"] == ("user", "client", "Acme Corp")
    assert got["admin@acme.com"] == ("company_admin", "client", "Acme Corp")
    assert got["tech@techcorp.com"] == ("user", "client", "TechCorp Inc")
    assert got["founder@startupxyz.com"] == ("company_admin", "client", "StartupXYZ")


def test_sample_passwords_are_salted_bcrypt_hashes_of_systech123(settings: Settings, conn):
    run_seeds(settings, lookups=True, sample=True)
    hashes = [r[0] for r in conn.execute("SELECT password_hash FROM users")]
    assert len(hashes) == 8
    for stored in hashes:
        assert stored.startswith("$2b$")
        assert SAMPLE_PASSWORD not in stored
        assert bcrypt.checkpw(SAMPLE_PASSWORD.encode(), stored.encode())
        assert not bcrypt.checkpw(b"wrong", stored.encode())
    assert len(set(hashes)) == 8  # a salt per user


def test_sample_twice_creates_no_duplicates_and_reports_existing(run_cli, conn):
    assert run_cli("seed", "lookups").returncode == 0
    first = run_cli("seed", "sample")
    assert first.returncode == 0, first.stderr
    for line in ("✅ Created client: Acme Corp", "✅ Created product: Tasklets",
                 "✅ Created internal user: ramesh@systech.com (admin)",
                 "✅ Created client user: john@acme.com (user)", "✅ Created team: QA",
                 "✅ Created idea: Dark mode", "📊 Summary:", "   Tenants: 1", "   Clients: 3",
                 "   Products: 4", "   Internal Users: 4", "   Client Users: 4", "   Teams: 4",
                 "   Ideas: 3", "🔑 Test users (password: Systech@123):", "   Internal portal:",
                 "   Client portal:", "✅ Sample data seeded!"):
        assert line in first.stdout, line
    before = counts(conn)
    hashes = conn.execute("SELECT email, password_hash FROM users ORDER BY email").fetchall()
    second = run_cli("seed", "sample")
    assert second.returncode == 0, second.stderr
    assert counts(conn) == before
    assert conn.execute("SELECT email, password_hash FROM users ORDER BY email").fetchall() \
        == hashes
    assert "✅ Using existing client: Acme Corp" in second.stdout
    assert "   Clients: 3 (already present)" in second.stdout
    assert "✅ Sample data already present: nothing created." in second.stdout


def test_sample_completes_a_partially_seeded_database(settings: Settings, conn):
    run_seeds(settings, lookups=True, sample=True)
    conn.execute("DELETE FROM clients WHERE name = 'StartupXYZ'")  # cascades to its user
    result = run_seeds(settings, lookups=False, sample=True)
    assert result.sample.counts["Clients"].created == 1
    assert result.sample.counts["Clients"].existing == 2
    assert result.sample.counts["Client Users"].created == 1
    assert counts(conn)["users"] == 8


def test_failure_during_sample_leaves_nothing_half_seeded(settings: Settings, conn):
    run_seeds(settings, lookups=True, sample=False)
    before = counts(conn)
    # A real database error late in the run (tickets come after clients, users, epics...).
    conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'tickets are closed today'; END $$")
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON tickets "
                 "FOR EACH ROW EXECUTE FUNCTION refuse()")
    with pytest.raises(psycopg.errors.RaiseException):
        run_seeds(settings, lookups=False, sample=True)
    assert counts(conn) == before


def test_failure_during_legacy_seed_rolls_back_the_lookups_too(run_cli, conn):
    conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'no ideas please'; END $$")
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON ideas "
                 "FOR EACH ROW EXECUTE FUNCTION refuse()")
    result = run_cli("seed")
    assert result.returncode == 1
    assert "no ideas please" in result.stderr
    assert sum(counts(conn).values()) == 0


def test_bare_seed_is_legacy_lookups_plus_sample(run_cli, conn):
    result = run_cli("seed")
    assert result.returncode == 0, result.stderr
    assert "legacy alias" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert "📊 Tags created: 18/18" in result.stdout
    assert "✅ Sample data seeded!" in result.stdout
    assert counts(conn)["users"] == 8


def test_seed_demo_is_legacy_sample(run_cli, conn):
    assert run_cli("seed", "lookups").returncode == 0
    result = run_cli("seed", "demo")
    assert result.returncode == 0, result.stderr
    assert "legacy alias" in result.stderr and "seed sample" in result.stderr
    assert "Tags created" not in result.stdout
    assert counts(conn)["clients"] == 3


def test_seed_json_prints_a_summary_only(run_cli):
    result = run_cli("seed", "lookups", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["lookups"]["tags"] == {"created": 18, "existing": 0}
    sample = json.loads(run_cli("seed", "sample", "--json").stdout)
    assert sample["sample"]["counts"]["Clients"] == {"created": 3, "existing": 0}


def test_sample_refuses_a_production_database_unless_allowed(run_cli, conn):
    assert run_cli("seed", "lookups").returncode == 0
    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    refused = run_cli("seed", "sample")
    assert refused.returncode == 2
    assert "production" in refused.stderr and "--allow-production" in refused.stderr
    assert counts(conn)["users"] == 0
    allowed = run_cli("seed", "sample", "--allow-production")
    assert allowed.returncode == 0, allowed.stderr
    assert counts(conn)["users"] == 8


def test_seed_on_database_without_schema_says_push_first(run_cli, empty_db_url):
    result = run_cli("seed", "lookups", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 1
    assert "push" in result.stderr


def test_fresh_pushes_and_seeds_then_changes_nothing(run_cli, empty_db_url):
    env = {"DATABASE_URL": empty_db_url}
    first = run_cli("fresh", env=env)
    assert first.returncode == 0, first.stderr
    assert "✅ Applied 0001" in first.stdout
    assert "📊 Tags created: 18/18" in first.stdout
    assert "🎉 Fresh database ready" in first.stdout
    with psycopg.connect(empty_db_url) as conn:
        before = counts(conn)
        assert all(n > 0 for n in before.values())
    second = run_cli("fresh", env=env)
    assert second.returncode == 0, second.stderr
    assert "already fresh" in second.stdout and "Nothing changed" in second.stdout
    with psycopg.connect(empty_db_url) as conn:
        assert counts(conn) == before


def test_get_or_create_matches_null_keys_and_computes_values_lazily(conn):
    tenant_id, created = get_or_create(conn, "tenants", {"name": "T"}, {"slug": "t"})
    assert created
    calls = []

    def values():
        calls.append(1)
        return {"email": "a@b.c", "metadata": {"k": 1}}

    key = {"tenant_id": tenant_id, "name": "C", "website": None}
    first = get_or_create(conn, "clients", key, values)
    second = get_or_create(conn, "clients", key, values)
    assert first == (second[0], True) and second[1] is False
    assert calls == [1]
    assert conn.execute("SELECT metadata FROM clients").fetchone()[0] == {"k": 1}


def test_hash_password_is_a_2b_hash_with_a_fresh_salt():
    first, second = hash_password("pw"), hash_password("pw")
    assert first.startswith("$2b$10$") and first != second
    assert bcrypt.checkpw(b"pw", first.encode())


def test_require_systech_tenant_error_names_seed_lookups(conn):
    from ops.seed.helpers import require_systech_tenant

    with pytest.raises(OpsError, match="seed lookups"):
        require_systech_tenant(conn)


def test_fresh_refuses_production_before_pushing_anything(run_cli, empty_db_url, conn):
    result = run_cli("fresh", env={"DATABASE_URL": empty_db_url, "APP_ENV": "production"})
    assert result.returncode == 2
    assert "production" in result.stderr
    with psycopg.connect(empty_db_url) as other:
        assert discover_tables(other) == []
