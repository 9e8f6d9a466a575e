"""`backup --anonymize`: production-shaped snapshots with nobody's personal data in them.

The data is the sample seed plus a little volume data (generated people, clients, work items);
each snapshot is searched as raw bytes for every known personal value, restored into another
database with plain `restore`, and checked there (row counts, unique keys, foreign keys).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.backup import load, table_section

from ops.anonymize.policy import DEFAULT_POLICY, load_policy
from ops.anonymize.transformers import Keyed
from ops.backup import create as backup_module
from ops.backup.create import backup
from ops.backup.format import open_backup
from ops.core.catalog import discover_tables, row_counts, unique_keys
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.slugs import SLUG_PATTERN
from ops.restore.apply import restore
from ops.seed.builtin import run_seeds
from ops.seed.data import CLIENTS, USERS

pytest_plugins = ["support.api_fixtures"]

SALT = "test-salt-0123456789abcdef"
OTHER_SALT = "another-salt-fedcba9876543210"


@pytest.fixture
def salted(settings: Settings) -> Settings:
    return replace(settings, anonymize_salt=SALT)


@pytest.fixture
def seeded(salted: Settings) -> Settings:
    """The sample seed and 0.02 units of volume data (~600 rows, generated people included)."""
    run_seeds(salted, lookups=True, sample=True, scale=0.02)
    return salted


def snapshot(settings: Settings, name: str, **options) -> Path:
    return backup(settings, output=settings.backup_dir / name, anonymize=load_policy(),
                  **options).path


def known_personal_data(conn: psycopg.Connection) -> set[str]:
    """Every email and person or client name the database holds, sample and generated."""
    values = {email for email, *_ in USERS} | {name for _, name, *_ in USERS}
    values |= {name for name, *_ in CLIENTS} | {email for _, email, _ in CLIENTS}
    for query in ("SELECT email FROM users", "SELECT name FROM users",
                  "SELECT name FROM clients", "SELECT email FROM clients WHERE email <> ''",
                  "SELECT website FROM clients WHERE website <> ''",
                  "SELECT author_name FROM comments WHERE author_name <> ''",
                  "SELECT title FROM tasks", "SELECT body FROM comments"):
        values |= {row[0] for row in conn.execute(query) if row[0]}
    return values


def test_snapshot_holds_no_known_personal_data_and_restores_with_every_key_intact(
        seeded: Settings, conn: psycopg.Connection, other_db_url: str):
    personal = known_personal_data(conn)
    assert len(personal) > 100 and "Ramesh Kumar" in personal and "Asha Adams" in personal
    hashes = {row[0] for row in conn.execute("SELECT password_hash FROM users")}
    path = snapshot(seeded, "snap.json")

    raw = path.read_bytes()
    for value in personal | hashes:
        assert value.encode() not in raw, value
        assert json.dumps(value).encode() not in raw, value
    assert SALT.encode() not in raw
    meta = load(path)["meta"]
    assert meta["anonymized"] is True
    assert meta["anonymizePolicySha256"] == load_policy().sha256
    assert "salt" not in json.dumps(meta).lower()

    target = replace(seeded, database_url=other_db_url)
    result = restore(target, path, safety_backup=False, allow_anonymized=True)
    assert result.foreign_keys_checked > 0  # every FK validated by the restore
    with psycopg.connect(other_db_url) as restored:
        tables = discover_tables(restored)
        assert row_counts(restored, tables) == row_counts(conn, tables)
        checked = 0
        for table, indexes in unique_keys(restored).items():
            for index, columns in indexes:
                cols = sql.SQL(", ").join(map(sql.Identifier, columns))
                set_ = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(
                    sql.Identifier(c)) for c in columns)  # NULLs never collide
                duplicate = restored.execute(sql.SQL(
                    "SELECT {} FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1 LIMIT 1").format(
                    cols, sql.Identifier(table), set_, cols)).fetchone()
                assert duplicate is None, (index, duplicate)
                checked += 1
        assert checked >= 25
        emails = [r[0] for r in restored.execute("SELECT email FROM users")]
        assert all(e.endswith("@example.test") for e in emails)
        # kept: ids, keys, vocabularies and numbers are exactly production's
        assert restored.execute("SELECT array_agg(status ORDER BY id), "
                                "array_agg(estimate_minutes ORDER BY id) FROM tasks").fetchone() \
            == conn.execute("SELECT array_agg(status ORDER BY id), "
                            "array_agg(estimate_minutes ORDER BY id) FROM tasks").fetchone()


def test_two_runs_are_identical_and_another_salt_changes_only_the_masked_columns(
        seeded: Settings):
    first = snapshot(seeded, "one.json")
    second = snapshot(seeded, "two.json")
    assert table_section(first) == table_section(second)
    other = snapshot(replace(seeded, anonymize_salt=OTHER_SALT), "other.json")
    policy = load_policy()
    a, b = load(first)["tables"], load(other)["tables"]
    changed: set[str] = set()
    for table, rows in a.items():
        assert len(rows) == len(b[table])
        for row, row_b in zip(rows, b[table], strict=True):
            assert row.keys() == row_b.keys()
            changed |= {f"{table}.{key}" for key in row if row[key] != row_b[key]}
    masked = {f"{t}.{re.sub(r'_([a-z])', lambda m: m.group(1).upper(), c)}"
              for t, columns in policy.tables.items()
              for c, rule in columns.items() if rule.transformer != "keep"}
    assert changed <= masked
    assert {"users.email", "users.name", "users.passwordHash", "tasks.title",
            "comments.body", "clients.name"} <= changed


def test_parallel_streams_anonymize_exactly_like_one_stream(seeded: Settings, monkeypatch):
    one = snapshot(seeded, "one.json", jobs=1)
    monkeypatch.setattr(backup_module, "PARALLEL_MIN_BYTES", 0)
    two = snapshot(seeded, "two.json.gz", jobs=2)
    assert table_section(one) == table_section(two)


def test_kept_values_keep_their_exact_text_and_json_rules_mask_by_key(
        salted: Settings, conn: psycopg.Connection):
    conn.execute("INSERT INTO tenants (id, name, slug) OVERRIDING SYSTEM VALUE "
                 "VALUES (1, 'T', 't')")
    conn.execute("INSERT INTO products (id, tenant_id, name) OVERRIDING SYSTEM VALUE "
                 "VALUES (1, 1, 'P')")
    conn.execute(
        "INSERT INTO tasks (tenant_id, product_id, title, estimate_minutes, metadata) VALUES "
        "(1, 1, 'Call Jane Roe', 1338, %s)",
        ('{"beads": {"notes": "Jane Roe\'s notes", "assignee": "Jane Roe", "status": "open", '
         '"metadata": {"k": "Jane"}}, "ratio": 1.50, "big": 123456789012345678901234567890, '
         '"tags": ["Jane Roe"]}',))
    conn.execute("INSERT INTO tasks (tenant_id, product_id, title, metadata) VALUES "
                 "(1, 1, 'x', 'null'::jsonb)")
    path = snapshot(salted, "snap.json")
    raw = path.read_bytes()
    assert b"Jane" not in raw.replace(b'"tags":["Jane Roe"]', b"")  # others = keep
    line = next(line for line in raw.splitlines() if b'"estimateMinutes"' in line
                and b'"ratio"' in line)
    assert b'"estimateMinutes":1338' in line
    assert b'"ratio": 1.50' in line or b'"ratio":1.50' in line
    assert b"123456789012345678901234567890" in line
    row = json.loads(line.rstrip(b","))
    assert row["title"] != "Call Jane Roe" and len(row["title"]) == len("Call Jane Roe")
    assert row["metadata"]["beads"]["status"] == "open"
    assert row["metadata"]["beads"]["assignee"] != "Jane Roe"
    assert json.loads(next(line for line in raw.splitlines()
                           if b'"title":"X"' in line or b'"$jsonNull"' in line
                           ).rstrip(b","))["$jsonNull"] == {"metadata": True}


def test_a_column_missing_from_the_policy_stops_the_backup_before_any_file(
        run_cli, conn: psycopg.Connection, backup_dir: Path):
    conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    for args in (("backup", "--anonymize"), ("anonymize", "check")):
        done = run_cli(*args, env={"ANONYMIZE_SALT": SALT})
        assert done.returncode == 1, done
        first, *rest = done.stderr.strip().splitlines()
        assert first.startswith("❌ users.nickname not classified in ") and len(rest) == 1
        assert 'nickname = "keep"' in rest[0] and "[users]" in rest[0]
    assert list(backup_dir.iterdir()) == []


def test_anonymize_check_passes_for_the_schema_at_head(run_cli):
    done = run_cli("anonymize", "check")
    assert done.returncode == 0, done.stderr
    assert "anonymize.toml classifies every column" in done.stdout
    as_json = json.loads(run_cli("anonymize", "check", "--json").stdout)
    assert as_json["transformed"]["users"]["password_hash"] == "password"


POLICY_ERRORS = [
    ('[users]\nemail = "emial"\n', "users.email: unknown transformer 'emial'"),
    ('[users]\nnickname = "keep"\n', "names column users.nickname, which the database does "
     "not have"),
    ('[userz]\nid = "keep"\n', "names table 'userz', which the database does not have"),
    ('[users]\nemail = ', "is not valid TOML"),
    ('[users]\nid = "hash"\n', "users.id is part of a primary or foreign key"),
    ('[users]\ntenant_id = "null"\n', "users.tenant_id is part of a primary or foreign key"),
    ('[users]\nname = "null"\n', "users.name is NOT NULL, so null would not restore"),
    ('[users]\nis_active = "email"\n', "users.is_active is boolean: email needs a text column"),
    ('[users]\nlast_login_at = { transformer = "date_shift", dayz = 3 }\n',
     "date_shift takes days, not 'dayz'"),
    ('[users]\nrole = { transformer = "constant" }\n', "constant needs value"),
    ('[clients]\nemail = { transformer = "email", domain = "x\\"y" }\n',
     "is not a domain name"),
]


@pytest.mark.parametrize(("change", "message"), POLICY_ERRORS)
def test_a_bad_policy_is_one_line_naming_what_is_wrong(run_cli, tmp_path: Path, change: str,
                                                       message: str, backup_dir: Path):
    policy = tmp_path / "policy.toml"
    table = change.split("]")[0] + "]"
    base = DEFAULT_POLICY.read_text()
    # replace the named column's line in its table (or add the table / broken text)
    if table in base and "=" in change.split("\n", 1)[1]:
        column, _, _ = change.split("\n", 1)[1].partition(" =")
        section = base.index(table)
        existing = re.compile(rf"^{column} = .*$", re.M).search(base, section)
        if existing and existing.start() < base.find("\n[", section + 1):
            base = base[:existing.start()] + change.split("\n", 1)[1].rstrip("\n") + \
                base[existing.end():]
        else:
            base = base.replace(table, change.rstrip("\n"), 1)
    else:
        base += "\n" + change
    policy.write_text(base)
    done = run_cli("backup", "--anonymize", "--policy", str(policy),
                   env={"ANONYMIZE_SALT": SALT})
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert message in lines[0] and len(lines) <= 2, lines
    assert list(backup_dir.iterdir()) == []


def test_the_salt_is_required_outside_development_and_never_written(
        run_cli, backup_dir: Path, conn: psycopg.Connection):
    done = run_cli("backup", "--anonymize")  # APP_ENV=test
    assert done.returncode == 1
    assert done.stderr.startswith("❌ ANONYMIZE_SALT is not set, and this is not a "
                                  "development target (APP_ENV=test); nothing was written")
    assert run_cli("backup", "--anonymize", env={"ANONYMIZE_SALT": "short"}).returncode == 1
    assert list(backup_dir.iterdir()) == []
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Initech', 'initech')")
    done = run_cli("backup", "--anonymize", "--compress", "--json",
                   env={"ANONYMIZE_SALT": SALT})
    assert done.returncode == 0, done.stderr
    assert SALT not in done.stdout + done.stderr
    [path] = [p for p in backup_dir.iterdir() if not p.name.endswith(".sum")]
    assert path.name.endswith(".json.zst") and (path.stat().st_mode & 0o777) == 0o600
    with open_backup(path) as fh:
        content = fh.read()
    assert SALT.encode() not in content and b"Initech" not in content
    development = run_cli("backup", "--anonymize", env={"APP_ENV": "development"})
    assert development.returncode == 0, development.stderr


def test_policy_without_anonymize_is_a_usage_error(run_cli):
    done = run_cli("backup", "--policy", "x.toml")
    assert done.returncode == 2 and "--policy only applies with --anonymize" in done.stderr


def test_a_developer_logs_in_with_the_sample_password_after_restoring_a_snapshot(
        seeded: Settings, api_client, conn: psycopg.Connection):
    path = snapshot(seeded, "snap.json")
    # the API of these fixtures serves `settings`' database: restore the snapshot there
    restore(seeded, path, safety_backup=False, allow_anonymized=True)
    email = conn.execute("SELECT email FROM users WHERE role = 'admin' AND user_type = "
                         "'internal' ORDER BY id LIMIT 1").fetchone()[0]
    assert email.endswith("@example.test")
    response = api_client.post("/api/auth/login",
                               json={"email": email, "password": "Systech@123"})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    tasks = api_client.get("/api/tasks?limit=5", headers={"Authorization": f"Bearer {token}"})
    assert tasks.status_code == 200 and len(tasks.json()) == 5
    old = api_client.post("/api/auth/login",
                          json={"email": "ramesh@systech.com", "password": "Systech@123"})
    assert old.status_code == 401


def test_fresh_from_refuses_a_backup_that_is_not_anonymized(run_cli, conn, backup_dir: Path,
                                                           salted: Settings):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Initech', 'initech')")
    plain = backup(salted, output=backup_dir / "plain.json").path
    done = run_cli("fresh", "--from", str(plain))
    assert done.returncode == 2
    assert done.stderr.startswith("❌ plain.json is not an anonymized snapshot (its meta does "
                                  "not say anonymized)")
    assert "--allow-real-data" in done.stderr
    conn.execute("DELETE FROM tenants")
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0  # untouched
    allowed = run_cli("fresh", "--from", str(plain), "--allow-real-data")
    assert allowed.returncode == 0, allowed.stderr
    assert conn.execute("SELECT name FROM tenants").fetchone()[0] == "Initech"


def test_fresh_from_restores_an_anonymized_snapshot_after_push(run_cli, seeded: Settings,
                                                               empty_db_url: str):
    path = snapshot(seeded, "snap.json")
    done = run_cli("fresh", "--from", str(path), env={"DATABASE_URL": empty_db_url})
    assert done.returncode == 0, done.stderr
    assert "✅ Applied 0001" in done.stdout and "Log in as any user" in done.stdout
    with psycopg.connect(empty_db_url) as fresh:
        emails = [r[0] for r in fresh.execute("SELECT email FROM users")]
    assert emails and all(e.endswith("@example.test") for e in emails)


def test_fakes_are_hmac_sha256_of_the_value_under_the_salt():
    keyed = Keyed(SALT.encode())
    for kind, value in (("email", "ramesh@systech.com"), ("text", "x" * 300)):
        assert keyed.digest(kind, value) == hmac.digest(
            SALT.encode(), f"{kind}\0{value}".encode(), "sha256")
    assert Keyed(b"k" * 100).mac(b"m") == hmac.digest(b"k" * 100, b"m", "sha256")
    # the same value gets the same fake in any column; other values other fakes
    assert keyed.email("a@b.c") == Keyed(SALT.encode()).email("a@b.c") != keyed.email("a@b.d")
    assert len(keyed.text("Call Jane about the invoice")) == len("Call Jane about the invoice")


def test_unclassified_column_error_names_every_missing_column_briefly(salted, conn):
    conn.execute("ALTER TABLE users ADD COLUMN a text, ADD COLUMN b text")
    with pytest.raises(OpsError, match=r"^users\.a, users\.b not classified"):
        snapshot(salted, "x.json")


def test_a_table_without_primary_key_and_nothing_kept_is_anonymized_and_verifies(
        salted: Settings, conn: psycopg.Connection, tmp_path: Path):
    from ops.backup.verify import verify_backup

    conn.execute("CREATE TABLE notes (body text, seen_at timestamptz, seen_on date)")
    conn.execute("INSERT INTO notes VALUES ('Jane Roe called', '2024-01-08 09:00:45.5+00', "
                 "'2024-01-08'), ('Jane Roe called', '2024-01-08 09:00:45.5+00', "
                 "'2024-01-08'), (NULL, 'infinity', NULL)")
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text() + '\n[notes]\nbody = "text"\n'
                      'seen_at = { transformer = "date_shift", days = 5 }\n'
                      'seen_on = { transformer = "date_shift", days = 5 }\n')
    path = backup(salted, output=salted.backup_dir / "x.json",
                  anonymize=load_policy(policy)).path
    assert verify_backup(path).ok
    rows = load(path)["tables"]["notes"]
    assert b"Jane" not in path.read_bytes() and len(rows) == 3
    shifted = [r for r in rows if r["body"] is not None]
    assert shifted[0] == shifted[1]  # the same row text shifts alike
    moved = shifted[0]
    assert moved["seenAt"] != "2024-01-08T09:00:45.5+00:00"
    assert (moved["seenAt"][:10] == moved["seenOn"])  # one shift per row
    assert {"body": None, "seenAt": "infinity", "seenOn": None} in rows


def test_tenant_slugs_are_masked_unique_and_url_safe(salted: Settings,
                                                     conn: psycopg.Connection):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Acme Corp', 'acme-corp'), "
                 "('Initech', 'initech')")
    path = snapshot(salted, "slugs.json")
    slugs = [row["slug"] for row in load(path)["tables"]["tenants"]]
    assert len(set(slugs)) == 2 and not {"acme-corp", "initech"} & set(slugs)
    assert all(re.fullmatch(SLUG_PATTERN, slug) for slug in slugs)
