"""Backups an older release wrote (tests/fixtures/backups, revision 0001) restore into the
current head: every future migration must carry them forward, or this fails."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from support.backup import load
from support.migrations import FIRST, HEAD, OLD_BACKUPS
from support.restore import marker

from ops.backup.files import read_meta
from ops.core.catalog import discover_tables, row_counts
from ops.core.config import Settings
from ops.core.slugs import SLUG_PATTERN
from ops.restore.apply import restore
from ops.schema.migrate import schema_differences

OLD_FILES = sorted(OLD_BACKUPS.glob("*.json*"))


def test_the_old_backups_are_there_and_were_made_at_the_first_revision():
    assert {p.name for p in OLD_FILES} == {
        "0001-sample.json", "0001-sample.json.gz", "0001-sample-scale-0.05.json.gz"}
    assert {read_meta(p)["alembicRevision"] for p in OLD_FILES} == {FIRST}


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.name)
def test_an_old_backup_restores_into_head_with_its_data_migrated(
        settings: Settings, conn: psycopg.Connection, path: Path):
    meta = read_meta(path)
    before = marker(conn)

    result = restore(settings, path)

    assert (result.migrated_from, result.migrated_to) == (FIRST, HEAD)
    assert row_counts(conn, discover_tables(conn)) == meta["rowCounts"]
    hours = {row["id"]: row["estimateHours"] for row in load(path)["tables"]["tasks"]}
    minutes = dict(conn.execute("SELECT id, estimate_minutes FROM tasks").fetchall())
    assert minutes == {i: None if h is None else round(Decimal(str(h)) * 60)
                       for i, h in hours.items()}
    slugs = [s for (s,) in conn.execute("SELECT slug FROM tenants")]
    assert len(slugs) == meta["rowCounts"]["tenants"] == len(set(slugs))
    assert all(re.fullmatch(SLUG_PATTERN.strip("^$"), s) for s in slugs)
    assert schema_differences(settings) == []  # `check` is clean
    assert marker(conn) == before
