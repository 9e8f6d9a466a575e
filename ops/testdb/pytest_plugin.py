"""pytest plugin: `tasklets_db`, a fresh migrated (and seeded) database for every test.

Registered through the `pytest11` entry point, so any project with tasklets-ops installed
has it; it does nothing until a test asks for one of its fixtures.

- `tasklets_db`: a TestDatabase (`.name`, `.url`) of its own for the test, returned after it.
  What it holds: the `tasklets_db_seeds` ini option (seed names; default none: the schema
  only), or per test `@pytest.mark.tasklets_db(seeds=["lookups", "sample"], snapshot=...)`.
- `tasklets_db_pool`: the session's pool, for more than one database per test
  (`with tasklets_db_pool.database() as db:`) or the template itself (`.template()`).
- `tasklets_db_server_url`: the PostgreSQL server (a role with CREATEDB) the pool works on:
  TESTDB_DATABASE_URL by default; override the fixture to supply one (this project's own
  conftest hands it its throwaway cluster).

With TESTDB_SERVER set, databases come from that running `tasklets-db testdb serve` instead.
Under pytest-xdist each worker is a pool of its own: the template is built once (the first
worker builds, the others wait for it), clone names carry the worker's pool id, so no two
tests ever share a database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    name: str
    url: str


class TestDatabases:
    """The session's source of databases: a pool in this process, or a testdb server."""

    __test__ = False

    def __init__(self, source: Any, default_seeds: tuple[str, ...]) -> None:
        self.source = source
        self.default_seeds = default_seeds
        self._hashes: dict[Any, str] = {}

    def _recipe(self, seeds: Any = None, snapshot: str | None = None) -> Any:
        from ops.testdb.recipe import Recipe

        return Recipe.from_request(self.default_seeds if seeds is None else seeds, snapshot)

    def template(self, seeds: Any = None, snapshot: str | None = None) -> Any:
        """The template (built once per hash) the databases are cloned from."""
        recipe = self._recipe(seeds, snapshot)
        found = self.source.ensure(recipe)
        self._hashes[recipe] = found.hash
        return found

    @contextmanager
    def database(self, seeds: Any = None, snapshot: str | None = None
                 ) -> Iterator[TestDatabase]:
        recipe = self._recipe(seeds, snapshot)
        if recipe not in self._hashes:
            self.template(seeds, snapshot)
        lease = self.source.lease(self._hashes[recipe], wait=600)
        try:
            yield TestDatabase(lease.name, lease.url)
        finally:
            self.source.give_back(lease.name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("tasklets_db_seeds", type="linelist", default=[],
                  help="Seeds every tasklets_db database holds (lookups, sample, custom).")
    parser.addini("tasklets_db_ready", default="2",
                  help="Databases the tasklets_db pool makes ahead (per worker).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tasklets_db(seeds=[...], snapshot=None): what the "
                            "test's tasklets_db database is built from")


@pytest.fixture(scope="session")
def tasklets_db_server_url() -> str:
    """A PostgreSQL server URL whose role may create databases (override to supply one)."""
    url = os.environ.get("TESTDB_DATABASE_URL", "")
    if not url and not os.environ.get("TESTDB_SERVER"):
        pytest.fail("tasklets_db needs a PostgreSQL server: set TESTDB_DATABASE_URL (a role "
                    "with CREATEDB), TESTDB_SERVER (a running `tasklets-db testdb serve`), or "
                    "override the tasklets_db_server_url fixture", pytrace=False)
    return url


@pytest.fixture(scope="session")
def tasklets_db_pool(request: pytest.FixtureRequest) -> Iterator[TestDatabases]:
    seeds = tuple(request.config.getini("tasklets_db_seeds"))
    if os.environ.get("TESTDB_SERVER"):
        from ops.testdb.client import Client

        yield TestDatabases(Client.from_env(), seeds)
        return
    from ops.core.config import Settings
    from ops.core.errors import OpsError
    from ops.testdb.admin import open_admin
    from ops.testdb.pool import Limits, Pool

    url = request.getfixturevalue("tasklets_db_server_url")
    settings = Settings(database_url=url, app_env="test",
                        backup_dir=Path(os.environ.get("BACKUP_DIR") or "backups"),
                        seeds_dir=Path(os.environ.get("SEEDS_DIR") or "seeds"))
    try:
        pool = Pool(open_admin(settings),
                    Limits(ready=int(request.config.getini("tasklets_db_ready")))).start()
    except OpsError as exc:
        pytest.fail(f"tasklets_db: {exc.message} ({exc.hint or ''})", pytrace=False)
    request.config.stash[_POOL] = pool
    try:
        yield TestDatabases(pool, seeds)
    finally:
        pool.close()


_POOL = pytest.StashKey[Any]()


@pytest.fixture
def tasklets_db(request: pytest.FixtureRequest,
                tasklets_db_pool: TestDatabases) -> Iterator[TestDatabase]:
    """A database of the test's own, dropped after it."""
    marker = request.node.get_closest_marker("tasklets_db")
    options = dict(marker.kwargs) if marker else {}
    with tasklets_db_pool.database(options.get("seeds"), options.get("snapshot")) as db:
        yield db


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line on what the pool did (this process's pool; xdist workers keep their own)."""
    pool = config.stash.get(_POOL, None)
    if pool is None:
        return
    c = pool.counters
    status = pool.status()
    terminalreporter.write_line(
        f"tasklets_db: {c.handed_out} databases handed out, {c.templates_built} template(s) "
        f"built, clone median {status['clone_ms']['median']} ms, hand-out p95 "
        f"{status['handout_ms']['p95']} ms")
