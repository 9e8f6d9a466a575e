"""A backup written on one PostgreSQL major version restores exactly on every other one, both
ways: the logical backup is how a database moves between major versions.

One database per version (shared by the module) gets the app schema, the sample data and the
tables of exotic values; each version's backup is restored into every other version's
database, which must then hold exactly the rows the writing server held (ordered per-table
hashes, computed under the same session settings on every server).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.exotic import JSON_EDGES_SQL, TYPES_SQL
from support.restore import insert_sample, table_hashes

from ops.backup.create import backup
from ops.core.config import Settings
from ops.dev.cluster import LocalCluster, start_throwaway, usable_by_server, wheel_bin_dir
from ops.restore.apply import restore
from ops.schema.migrate import push

pytestmark = pytest.mark.pgversions

VERSIONS = (15, 16, 18)
# What `t::text` of a row depends on, the same on every server.
SAME_TEXT = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1"


def hashes(url: str) -> dict:
    with psycopg.connect(url, options=SAME_TEXT) as conn:
        return table_hashes(conn)


@pytest.fixture(scope="module")
def written(pg_versions: dict[int, str], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[int, tuple[Settings, Path, dict]]]:
    """Per version: settings of its database, the backup written there, that data's hashes."""
    assert set(VERSIONS) <= set(pg_versions), f"servers found: {sorted(pg_versions)}"
    made: dict[int, tuple[Settings, Path, dict]] = {}
    for major in VERSIONS:
        with psycopg.connect(pg_versions[major], autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS tasklets_versions WITH (FORCE)")
            admin.execute("CREATE DATABASE tasklets_versions")
        url = pg_versions[major].rsplit("/", 1)[0] + "/tasklets_versions"
        settings = Settings(database_url=url, backup_dir=tmp_path_factory.mktemp(f"pg{major}"),
                            app_env="test")
        push(settings)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TYPES_SQL)
            conn.execute(JSON_EDGES_SQL)
            insert_sample(conn)
            assert conn.info.server_version // 10000 == major
        # each version writes another format: plain, zstd, gzip
        compression = {16: "zstd", 18: "gzip"}.get(major)
        made[major] = (settings, backup(settings, compression=compression).path, hashes(url))
    yield made


def test_every_version_runs_and_the_data_differs_between_them(written):
    # timestamps and generated ids differ, so a restore that changed nothing would show
    all_hashes = [data for _, _, data in written.values()]
    assert all(a != b for a, b in itertools.combinations(all_hashes, 2))


@pytest.mark.parametrize(("source", "target"), list(itertools.permutations(VERSIONS, 2)),
                         ids=lambda v: f"pg{v}")
def test_a_backup_restores_exactly_on_another_major_version(written, source: int, target: int):
    _, path, expected = written[source]
    settings, _, _ = written[target]

    result = restore(settings, path, safety_backup=False)

    assert result.checksums_verified
    assert hashes(settings.database_url) == expected


def test_a_postgres_the_server_user_cannot_read_is_copied_where_it_can(tmp_path: Path):
    """As root the server runs as `postgres`: binaries it cannot reach (a private directory,
    files installed with a tight umask) are copied where it can; otherwise used in place."""
    wheel = wheel_bin_dir("pgserver")
    assert wheel is not None
    private = tmp_path / "private"
    shutil.copytree(wheel.parent, private / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(wheel.parent.parent.parent / "pgserver.libs", private / "pgserver.libs")
    private.chmod(0o700)
    base = Path(tempfile.mkdtemp(prefix="tasklets-pgcopy-"))
    base.chmod(0o755)
    try:
        inside = private / "pgserver" / "pginstall" / "bin"
        usable = usable_by_server(inside, base)
        if os.geteuid() == 0:
            assert usable == base / "postgres" / "pgserver" / "pginstall" / "bin"
        else:  # the server runs as ourselves, who can read it
            assert usable == inside.resolve()
        cluster: LocalCluster = start_throwaway(base / "cluster", usable)
        try:
            with psycopg.connect(cluster.url) as conn:
                assert conn.info.server_version // 10000 == 16
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)
