"""The test-database pool (ops.testdb) against the session's real server: templates keyed by
what builds them, clones handed out one caller each, leases, bounds, and the rule that only
databases carrying the pool's marks are ever dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql
from support.databases import with_dbname

from ops.core.config import Settings
from ops.core.errors import NotFound, OpsError, Refused, UsageError
from ops.core.guard import record_environment
from ops.testdb.admin import drop_pool_database, open_admin
from ops.testdb.marks import COMMENT_TAG, Owner, classify, comment_for, pool_databases
from ops.testdb.pool import Limits, Pool, PoolExhausted
from ops.testdb.recipe import Recipe, recipe_hash

PROBE_SEED = '''"""A probe table with one row saying {word!r}."""
def run(conn, report):
    conn.execute("CREATE TABLE IF NOT EXISTS probe (word text)")
    conn.execute("INSERT INTO probe VALUES (%s)", ({word!r},))
'''


def _names(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE_SEED.format(word=f"one {tmp_path.name}"))
    return folder


@pytest.fixture
def server_settings(pg_server_url: str, seeds: Path, tmp_path: Path) -> Settings:
    return Settings(database_url=pg_server_url, backup_dir=tmp_path, app_env="test",
                    seeds_dir=seeds)


@pytest.fixture
def pool(server_settings: Settings) -> Iterator[Pool]:
    with Pool(open_admin(server_settings), Limits(ready=2, grace=0.5)) as started:
        yield started


def test_an_unchanged_hash_reuses_the_template_and_a_changed_one_builds_beside_it(
        pool: Pool, server_settings: Settings, seeds: Path, pg_server_url: str):
    recipe = Recipe(("probe",))
    first = pool.ensure(recipe)
    assert first.built and first.name in _names(pg_server_url)
    with Pool(open_admin(server_settings), Limits(ready=0)) as second_run:
        again = second_run.ensure(recipe)
    assert again.hash == first.hash and not again.built  # a second run builds nothing

    kept = pool.lease(first.hash)
    (seeds / "probe.py").write_text(PROBE_SEED.format(word="two"))
    changed = pool.ensure(recipe)
    assert changed.built and changed.hash != first.hash
    names = _names(pg_server_url)
    assert {first.name, changed.name} <= names  # beside the old one, which has a clone out
    with psycopg.connect(pool.lease(changed.hash).url) as conn:
        assert conn.execute("SELECT word FROM probe").fetchall() == [("two",)]
    with psycopg.connect(kept.url) as conn:
        assert conn.execute("SELECT word FROM probe").fetchone()[0].startswith("one")

    time.sleep(1.0)
    assert first.name in _names(pg_server_url)  # still: its clone is out
    pool.give_back(kept.name)
    _wait_for(lambda: first.name not in _names(pg_server_url))
    assert changed.name in _names(pg_server_url)
    assert pool.counters.templates_dropped == 1


def test_the_hash_covers_migrations_seed_code_and_the_snapshot(
        server_settings: Settings, seeds: Path, sample: dict, settings: Settings,
        conn: psycopg.Connection, tmp_path: Path):
    from ops.backup.create import backup

    plain = recipe_hash(Recipe(), server_settings)
    probe = recipe_hash(Recipe(("probe",)), server_settings)
    (seeds / "_helpers.py").write_text("WORD = 'shared'\n")  # seeds may import helpers
    assert recipe_hash(Recipe(("probe",)), server_settings) != probe
    assert recipe_hash(Recipe(), server_settings) == plain
    assert recipe_hash(Recipe(("lookups",)), server_settings) != plain
    first = backup(settings, output=tmp_path / "first.json")
    from_snapshot = recipe_hash(Recipe(snapshot=str(first.path)), server_settings)
    assert from_snapshot != plain
    assert from_snapshot == recipe_hash(Recipe(snapshot=str(first.path)), server_settings)
    conn.execute("DELETE FROM comments")
    second = backup(settings, output=tmp_path / "second.json")
    assert recipe_hash(Recipe(snapshot=str(second.path)), server_settings) != from_snapshot
    with pytest.raises(NotFound, match="no seed named 'nope'"):
        recipe_hash(Recipe(("nope",)), server_settings)


def test_concurrent_clients_never_get_the_same_database(server_settings: Settings,
                                                        pool: Pool):
    template = pool.ensure(Recipe(("probe",)))
    other = Pool(open_admin(server_settings), Limits(ready=2)).start()  # a second server
    try:
        other.ensure(Recipe(("probe",)))
        got: list[str] = []
        lock = threading.Lock()
        failures: list[BaseException] = []

        def client(source: Pool, number: int) -> None:
            try:
                for round_ in range(4):
                    lease = source.lease(template.hash, wait=120)
                    with psycopg.connect(lease.url, autocommit=True) as conn:
                        # the database is this client's alone: its own row stays the only one
                        conn.execute("INSERT INTO probe VALUES (%s)", (f"{number}/{round_}",))
                        rows = conn.execute("SELECT word FROM probe WHERE word LIKE "
                                            "'%/%'").fetchall()
                        assert rows == [(f"{number}/{round_}",)]
                    with lock:
                        got.append(lease.name)
                    source.give_back(lease.name)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(pool if n % 2 else other, n))
                   for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not failures, failures
        assert len(got) == 32 and len(set(got)) == 32
    finally:
        other.close()


def test_recycled_databases_come_back_and_dropped_ones_do_not(pool: Pool, pg_server_url: str):
    template = pool.ensure(Recipe(("probe",)))
    first = pool.lease(template.hash)
    pool.give_back(first.name, recycle=True)
    again = [pool.lease(template.hash) for _ in range(3)]
    assert first.name in {lease.name for lease in again}
    for lease in again:
        pool.give_back(lease.name)
    _wait_for(lambda: not {lease.name for lease in again} & _names(pg_server_url))
    with pytest.raises(NotFound, match="not leased"):
        pool.give_back(first.name)


def test_leases_expire_and_are_reclaimed(server_settings: Settings, pg_server_url: str):
    with Pool(open_admin(server_settings), Limits(ready=1, lease_seconds=1.0)) as pool:
        template = pool.ensure(Recipe(("probe",)))
        lease = pool.lease(template.hash)
        conn = psycopg.connect(lease.url, autocommit=True)  # a test that forgot to return it
        try:
            _wait_for(lambda: lease.name not in _names(pg_server_url))
        finally:
            conn.close()
        assert pool.counters.reclaimed == 1
        with pytest.raises(NotFound, match="reclaimed"):
            pool.give_back(lease.name)
        assert pool.lease(template.hash).name != lease.name


def test_the_pool_is_bounded_by_count_and_by_disk(server_settings: Settings):
    with Pool(open_admin(server_settings), Limits(ready=0, max_databases=2)) as pool:
        template = pool.ensure(Recipe(("probe",)))
        held = [pool.lease(template.hash, wait=60) for _ in range(2)]
        with pytest.raises(PoolExhausted, match="2 out, the pool holds its maximum of 2"):
            pool.lease(template.hash, wait=0.5)
        pool.give_back(held[0].name)
        assert pool.lease(template.hash, wait=60).name not in {h.name for h in held}
    size = template.size
    bound = int(size * 2.5)
    with Pool(open_admin(server_settings), Limits(ready=5, max_disk_bytes=bound)) as pool:
        pool.ensure(Recipe(("probe",)))
        _wait_for(lambda: pool.status()["held"] == 2)
        time.sleep(0.5)
        assert pool.status()["held"] == 2  # a third would pass the bound
        assert pool.status()["estimated_bytes"] <= bound


def test_a_database_not_made_by_the_pool_is_never_dropped(server_settings: Settings,
                                                          pg_server_url: str):
    dead = Owner("0badf00d", "another-machine/x", 1, None)  # gone: no presence session
    decoys = {
        "tdb_notes": None,  # our prefix, another shape
        "tdb_0123abcd_0badf00d_1": "keep me: a comment that is not ours",
        "tdb_tpl_" + "a" * 24: None,  # a template's name without the template's mark
        "myapp_test": comment_for("clone", "a" * 24, dead),  # our mark, another name
        "tdb_0123abcd_12345678_1": comment_for("clone", "0123abcd" + "0" * 16, dead),  # owner
    }                                                       # in the comment != in the name
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name, comment in decoys.items():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            if comment:
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(comment)))
        # a real orphan beside them, so the sweep has work: a clone of a dead owner
        orphan = "tdb_0123abcd_0badf00d_2"
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(orphan)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(orphan), sql.Literal(comment_for("clone", "0123abcd" + "0" * 16,
                                                            dead))))
    try:
        admin = open_admin(server_settings)
        with Pool(admin, Limits(ready=0, grace=0.2)) as pool:
            _wait_for(lambda: orphan not in _names(pg_server_url))
            assert pool.counters.orphans_dropped == 1
        with admin.connect() as conn:
            for name in decoys:
                assert not drop_pool_database(conn, admin, name), name
        assert set(decoys) <= _names(pg_server_url)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            for name in decoys:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(
                    sql.Identifier(name)))


def test_marks_are_read_strictly():
    owner = Owner("89abcdef", "m", 1, None)
    clone = "tdb_0123abcd_89abcdef_7"
    assert classify(clone, comment_for("clone", "0123abcd" + "f" * 16, owner)).owner \
        == "89abcdef"
    assert classify(clone, None).kind == "clone"  # killed between CREATE and COMMENT
    assert classify(clone, COMMENT_TAG + "{not json") is None
    assert classify(clone, comment_for("clone", "ffffffff" + "0" * 16, owner)) is None
    assert classify("tdb_0123abcd_89abcdef_7x", None) is None
    assert classify("tdb_bld_" + "b" * 24, comment_for("template", "c" * 24, None)) is None


@pytest.mark.parametrize("seeds", [5, "lookups", "", ["lookups", ""], [None]])
def test_a_recipe_refuses_seeds_that_are_not_a_list_of_names_in_one_line(seeds: object):
    # a marker's seeds=5 once raised TypeError (not iterable) instead of the usage line
    with pytest.raises(UsageError, match="seeds must be a list of seed names"):
        Recipe.from_request(seeds)


def test_a_recipe_takes_seeds_from_any_iterable_once():
    assert Recipe.from_request(name for name in ["lookups", "sample"]).seeds \
        == ("lookups", "sample")
    assert Recipe.from_request(None).seeds == ()


def test_refuses_a_role_without_createdb_in_one_line(pg_server_url: str, tmp_path: Path,
                                                     run_cli_process):
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS tasklets_nocreate")
        conn.execute("CREATE ROLE tasklets_nocreate LOGIN NOCREATEDB")
    url = with_dbname(pg_server_url, "postgres", user="tasklets_nocreate")
    with pytest.raises(OpsError, match="may not create databases"):
        open_admin(Settings(database_url=url, backup_dir=tmp_path))
    done = run_cli_process("testdb", "serve", "--port", "1",
                           env={"TESTDB_DATABASE_URL": url})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("❌ the role tasklets_nocreate may not create databases")
    assert lines[1].startswith("💡 ALTER ROLE tasklets_nocreate CREATEDB") and len(lines) == 2


def test_refuses_a_production_marked_server_in_one_line(db_url: str, tmp_path: Path,
                                                        run_cli_process, pg_server_url: str):
    with psycopg.connect(db_url) as conn:
        record_environment(conn, Settings(database_url=db_url, backup_dir=tmp_path,
                                          app_env="production"))
        conn.commit()
    before = {db.owner for db in _pool_dbs(pg_server_url)}
    with pytest.raises(Refused, match="production"):
        open_admin(Settings(database_url=db_url, backup_dir=tmp_path, app_env="test"))
    done = run_cli_process("testdb", "serve", "--port", "1",
                           env={"TESTDB_DATABASE_URL": db_url})
    assert done.returncode == 2
    assert done.stderr.startswith("❌ refusing to make test databases on the server of a "
                                  "production database")
    assert len(done.stderr.strip().splitlines()) == 2  # the line and its hint
    # nothing was created: no pool but the session's (and this test's) has databases
    assert {db.owner for db in _pool_dbs(pg_server_url)} <= before


def _pool_dbs(url: str):
    with psycopg.connect(url, autocommit=True) as conn:
        return pool_databases(conn)


def test_a_role_with_only_createdb_runs_the_pool_as_on_a_managed_server(
        owner_db_url: str, pg_server_url: str, tmp_path: Path, seeds: Path):
    owner_role = urlsplit(owner_db_url).username  # CREATEDB, no superuser
    url = with_dbname(pg_server_url, "postgres", user=owner_role)
    settings = Settings(database_url=url, backup_dir=tmp_path, app_env="test", seeds_dir=seeds)
    with Pool(open_admin(settings), Limits(ready=1)) as pool:
        template = pool.ensure(Recipe(("probe",)))
        lease = pool.lease(template.hash)
        assert f"{owner_role}@" in lease.url
        with psycopg.connect(lease.url) as conn:
            assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 1
        pool.give_back(lease.name)
        _wait_for(lambda: lease.name not in _names(pg_server_url))
    with psycopg.connect(pg_server_url, autocommit=True) as conn:  # its template stays
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname "
                             "= %s", (template.name,)).fetchone()
    assert owner == (owner_role,)


def test_a_template_from_an_anonymized_snapshot_and_never_from_real_data(
        pool: Pool, settings: Settings, pg_server_url: str):
    from dataclasses import replace

    from ops.anonymize.policy import load_policy
    from ops.backup.create import backup
    from ops.seed.builtin import run_seeds

    run_seeds(settings, lookups=True, sample=True)
    salted = replace(settings, anonymize_salt="t" * 32)
    snapshot = backup(salted, output=settings.backup_dir / "snap.json",
                      anonymize=load_policy()).path
    plain = backup(settings, output=settings.backup_dir / "plain.json").path

    template = pool.ensure(Recipe(snapshot=str(snapshot)))
    lease = pool.lease(template.hash)
    with psycopg.connect(lease.url) as conn:
        emails = [e for (e,) in conn.execute("SELECT email FROM users")]
    assert len(emails) == 8 and "ramesh@systech.com" not in emails  # the snapshot's rows
    builds_before = {db.name for db in _pool_dbs(pg_server_url) if db.kind != "clone"}
    with pytest.raises(OpsError, match="not an anonymized snapshot"):
        pool.ensure(Recipe(snapshot=str(plain)))
    after = {db.name for db in _pool_dbs(pg_server_url) if db.kind != "clone"}
    assert after == builds_before  # nothing half-built kept


def test_a_template_another_process_finishes_just_after_the_look_is_not_built_again(
        pool: Pool, server_settings: Settings, pg_server_url: str,
        monkeypatch: pytest.MonkeyPatch):
    """Two builders of one template: the other renames its build to the template between
    this one's look (none yet) and its CREATE of the build's name, free again by then. Seen
    under xdist as 'database "tdb_tpl_…" already exists' at this one's rename. The look is
    made to miss once, as that interleaving does."""
    from ops.testdb import templates

    recipe = Recipe(("probe",))
    first = pool.ensure(recipe)
    real = templates.find_template
    looks: list[str] = []

    def late(conn: psycopg.Connection, template_hash: str):
        looks.append(template_hash)
        return None if len(looks) == 1 else real(conn, template_hash)

    monkeypatch.setattr(templates, "find_template", late)
    with Pool(open_admin(server_settings), Limits(ready=0)) as second:
        again = second.ensure(recipe)
    assert again.hash == first.hash and again.name == first.name and not again.built
    assert templates.build_name(first.hash) not in _names(pg_server_url)
