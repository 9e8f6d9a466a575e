"""Point-in-time restore ([3/5] #27): backups record where change replay starts, and
`restore --at` / `restore --tenant X --at` bring a database to any covered second."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pyrage import x25519
from support.backup import load
from support.capture import drain, drop_slot, origin_of, slot_name, stored_transactions
from support.restore import table_hashes
from support.tenants import GLOBEX, SYSTECH, insert_two_tenants, tenant_hashes

from ops.backup.archive import Archive
from ops.backup.create import BackupResult, backup
from ops.backup.prune import prune
from ops.capture.segments import (
    Change,
    Origin,
    Transaction,
    parse_lsn,
    read_segment,
    segment_facts,
    write_segment,
)
from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.core.errors import BadSegment, OpsError, UsageError
from ops.restore.at_time import parse_at, restore_at, stage_keys
from ops.restore.drill import restore_drill
from ops.restore.replay import Counts, Snapshot, Target, apply, wanted
from ops.restore.staging import Stage
from ops.restore.tenant import restore_tenant


def test_a_backup_records_the_snapshot_that_misses_a_transaction_in_flight(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    """The transaction is in flight across the backup: its rows are not in it, replay takes
    it (by xid, even when its commit LSN equals walLsn), and the chain replay reads from
    walLsn holds it. Its real commit LSN comes from capture: pg_current_wal_lsn() read after
    the commit is the WAL *write* position, which with synchronous_commit off may not have
    moved since walLsn was read (the flake this test once had)."""
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        with psycopg.connect(db_url) as other:
            other.execute("INSERT INTO tenants (name, slug) VALUES ('In flight', 'in-flight')")
            xid = other.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
            result = backup(settings)
            other.commit()
        drain(settings, slot, initial_backup=False)
    finally:
        drop_slot(db_url, slot)
    capture = load(result.path)["meta"]["capture"]
    snapshot, wal = Snapshot.parse(capture["snapshot"]), parse_lsn(capture["walLsn"])
    assert xid >= snapshot.xmax or xid in snapshot.xip  # not in the backup
    assert "In flight" not in {row["name"] for row in load(result.path)["tables"]["tenants"]}
    tx = next(tx for tx in stored_transactions(Archive.from_settings(settings))
              if tx.xid == xid & 0xFFFFFFFF)
    assert tx.lsn >= wal  # its commit record was written after walLsn was read
    assert list(wanted([tx, tx], snapshot, lambda _: True)) == [tx]  # taken, once
    assert capture["snapshotTime"].endswith("+00:00")


def test_replay_takes_a_commit_at_wal_lsn_once_and_skips_what_the_snapshot_holds() -> None:
    """The boundary: a commit LSN equal to walLsn is a transaction the snapshot may or may
    not hold; the snapshot alone decides, and a segment stored twice applies it once."""
    snapshot = Snapshot.parse("100:105:102")
    at = parse_lsn("0/5000")

    def tx(xid: int, lsn: int) -> Transaction:
        return Transaction(xid=xid, lsn=lsn, end_lsn=lsn + 0x30,
                           commit_time=datetime(2026, 1, 1, tzinfo=UTC), changes=[])

    held, missed, later = tx(101, at), tx(102, at + 0x30), tx(105, at + 0x60)
    stream = [held, missed, held, missed, later, later]  # overlapping segments
    assert list(wanted(stream, snapshot, lambda _: True)) == [missed, later]
    assert list(wanted([tx(102, at)], snapshot, lambda _: True)) == [tx(102, at)]


# --- the oracle: restore --at Ti equals the database as it was at Ti ----------------------

LOAD = [
    # step 1: both tenants edited, a TOASTed description written, rows deleted
    """
    UPDATE tasks SET title = title || ' v1', description = (
        SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 150) g)
      WHERE id IN (10, 15);
    INSERT INTO tags (tenant_id, name) VALUES (1, 'pitr-s1'), (3, 'pitr-g1'), (3, 'pitr-move');
    DELETE FROM item_tags WHERE tag_id IN (1, 3);
    UPDATE tenants SET settings = '{"pitr": [1, 2.50]}' WHERE id = 3;
    """,
    # step 2: the TOASTed value left untouched by an update; a tenant added; a key
    # changed; a row moved to another tenant; a TRUNCATE
    """
    UPDATE tasks SET status = 'done', labels = '{a,"b c"}' WHERE id IN (10, 15);
    INSERT INTO tenants (id, name, slug) VALUES (40, 'Initrode', 'initrode');
    INSERT INTO tags (tenant_id, name) VALUES (40, 'new-tenant');
    DELETE FROM comments WHERE tenant_id = 3 AND id IN (
        SELECT id FROM comments WHERE tenant_id = 3 ORDER BY id LIMIT 3);
    UPDATE tags SET id = id + 1000 WHERE name = 'pitr-g1';
    UPDATE tags SET tenant_id = 1 WHERE name = 'pitr-move';  -- it leaves Globex
    TRUNCATE item_tags;
    """,
    # step 3: more of both, after the last point restored to
    """
    UPDATE tasks SET title = 'after' WHERE tenant_id IN (1, 3);
    DELETE FROM tags WHERE name LIKE 'pitr-%';
    """,
]


@pytest.fixture
def captured(settings: Settings, conn: psycopg.Connection, db_url: str) -> Iterator[dict]:
    """Two tenants, a slot, a backup with a transaction in flight across it, then the load
    steps, each captured into its own segment; the database's state at each step's end."""
    insert_two_tenants(conn, volume=0.01)
    conn.commit()
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        with psycopg.connect(db_url) as other:
            other.execute("UPDATE tasks SET title = 'in flight' WHERE id = 20")
            backup(settings)
            other.commit()
        points = []
        for step in LOAD:
            conn.execute(step)
            conn.commit()
            at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            points.append({"at": at, "all": table_hashes(conn),
                           "globex": tenant_hashes(conn, GLOBEX)})
            conn.commit()
            drain(settings, slot, initial_backup=False)
        yield {"points": points[:-1], "slot": slot}
    finally:
        drop_slot(db_url, slot)


def test_restore_at_each_time_equals_the_database_then(settings: Settings,
                                                      conn: psycopg.Connection,
                                                      captured: dict) -> None:
    for point in reversed(captured["points"]):
        result = restore_at(settings, point["at"].isoformat(), safety_backup=False)
        assert result.plan.counts.transactions > 0
        conn.rollback()
        assert table_hashes(conn) == point["all"]


def test_restore_tenant_at_a_time_replaces_only_that_tenant(settings: Settings,
                                                           conn: psycopg.Connection,
                                                           captured: dict) -> None:
    systech_now = tenant_hashes(conn, SYSTECH)
    for point in captured["points"]:
        restore_at(settings, point["at"].isoformat(), tenant="Globex", safety_backup=False)
        conn.rollback()
        assert tenant_hashes(conn, GLOBEX) == point["globex"]
        assert tenant_hashes(conn, SYSTECH) == systech_now  # the others as they are now


def test_dry_run_names_backup_segments_and_counts_and_changes_nothing(
        settings: Settings, conn: psycopg.Connection, captured: dict) -> None:
    before = table_hashes(conn)
    result = restore_at(settings, captured["points"][0]["at"].isoformat(), dry_run=True)
    conn.rollback()
    assert table_hashes(conn) == before
    shown = result.as_json()["pointInTime"]
    assert shown["backup"].startswith("backup-") and shown["segments"]
    assert shown["tables"]["tags"]["inserted"] == 3
    assert shown["tables"]["tasks"]["updated"] >= 2


def test_a_time_outside_coverage_is_one_line_naming_the_range(
        settings: Settings, captured: dict) -> None:
    later = captured["points"][-1]["at"] + timedelta(days=1)
    with pytest.raises(OpsError) as found:
        restore_at(settings, later.isoformat())
    assert "after the last stored change" in found.value.message
    assert "Changes are covered from" in (found.value.hint or "")
    with pytest.raises(OpsError, match="no complete backup"):
        restore_at(settings, "2020-01-01T00:00:00Z")


def test_a_corrupt_or_missing_segment_is_refused_and_nothing_changes(
        settings: Settings, conn: psycopg.Connection, captured: dict,
        backup_dir: Path) -> None:
    at = captured["points"][-1]["at"]
    before = table_hashes(conn)
    archive = Archive.at(backup_dir)
    segments = archive.segments()
    needed = [s for s in segments if (segment_facts(archive, s).first_commit or at) < at]
    path = backup_dir / needed[-1].name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BadSegment, match=needed[-1].name):
        restore_at(settings, at.isoformat(), safety_backup=False)
    conn.rollback()
    assert table_hashes(conn) == before
    (backup_dir / needed[0].name).unlink()
    with pytest.raises(OpsError, match="are missing"):
        restore_at(settings, at.isoformat())


def test_a_segment_stored_twice_is_applied_once(settings: Settings, conn: psycopg.Connection,
                                                captured: dict, backup_dir: Path) -> None:
    archive = Archive.at(backup_dir)
    first, second = archive.segments()[:2]
    both = list(read_segment(archive, first)) + list(read_segment(archive, second))
    write_segment(archive, both, start_lsn=first.start_lsn, end_lsn=second.end_lsn,
                  revision=segment_facts(archive, first).revision, origin=origin_of(settings))
    point = captured["points"][-1]
    restore_at(settings, point["at"].isoformat(), safety_backup=False)
    conn.rollback()
    assert table_hashes(conn) == point["all"]


def test_at_takes_iso_with_a_zone_offsets_and_latest() -> None:
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert parse_at("-15m", now) == now - timedelta(minutes=15)
    assert parse_at("-2h", now) == now - timedelta(hours=2)
    assert parse_at("2026-12-07T14:32:00Z") == datetime(2026, 12, 7, 14, 32, tzinfo=UTC)
    assert parse_at("2026-12-07T15:32:00+01:00") == datetime(2026, 12, 7, 14, 32, tzinfo=UTC)
    assert parse_at("latest") is None
    for bad in ("2026-12-07T14:32:00", "yesterday", "-5x"):
        with pytest.raises(UsageError, match="--at"):
            parse_at(bad)


def test_latest_applies_every_stored_change(settings: Settings, conn: psycopg.Connection,
                                            captured: dict) -> None:
    now = table_hashes(conn)
    restore_at(settings, "latest", safety_backup=False)
    conn.rollback()
    assert table_hashes(conn) == now


def test_backups_show_coverage_and_verify_checks_segments(
        captured: dict, backup_dir: Path, run_cli) -> None:
    listed = run_cli("backups")
    assert listed.returncode == 0, listed.stderr
    assert "change segment(s)" in listed.stdout and "restore --at covers" in listed.stdout
    shown = json.loads(run_cli("backups", "coverage", "--json").stdout)
    assert shown["segments"] >= 3 and shown["gaps"] == [] and shown["to"] >= shown["from"]
    checked = json.loads(run_cli("verify", "--changes", "--json").stdout)
    assert checked["ok"] and checked["transactions"] >= 3
    archive = Archive.at(backup_dir)
    middle = archive.segments()[1]
    (backup_dir / middle.name).unlink()
    gap = run_cli("backups", "coverage")
    assert gap.returncode == 1 and "GAP" in gap.stderr + gap.stdout
    failed = run_cli("verify", "--changes")
    assert failed.returncode == 1 and "are missing" in failed.stderr + failed.stdout


def test_drill_replays_into_a_scratch_database(settings: Settings, conn: psycopg.Connection,
                                               captured: dict) -> None:
    before = table_hashes(conn)
    drilled = restore_drill(settings, at=captured["points"][0]["at"].isoformat())
    assert drilled.ok, drilled.problem
    assert "transaction(s) replayed" in drilled.checked[0]
    conn.rollback()
    assert table_hashes(conn) == before  # the live database is never touched


def test_prune_keeps_the_segments_a_kept_backup_needs(settings: Settings,
                                                      conn: psycopg.Connection,
                                                      captured: dict, backup_dir: Path) -> None:
    archive = Archive.at(backup_dir)
    before = {s.name for s in archive.segments()}
    assert prune(archive, keep=5, yes=True).segments_deleted == []  # the backup needs all
    later = backup(settings)  # a newer backup: what came before it is not needed any more
    conn.execute("UPDATE tenants SET plan = 'after the backup' WHERE id = 1")
    conn.commit()
    drain(settings, captured["slot"], initial_backup=False)
    after = {s.name for s in archive.segments()} - before
    assert prune(archive, keep=1).segments_deleted == sorted(before)  # shown, not deleted
    result = prune(archive, keep=1, yes=True)
    wal = parse_lsn(load(later.path)["meta"]["capture"]["walLsn"])
    assert set(result.segments_deleted) == before
    assert {s.name for s in archive.segments()} == after and after
    assert all(s.end_lsn > wal for s in archive.segments())
    assert not [p for p in backup_dir.iterdir() if p.name.removesuffix(".sum") in before]


def test_a_migration_between_backup_and_time_is_refused(settings: Settings, captured: dict,
                                                       backup_dir: Path) -> None:
    archive = Archive.at(backup_dir)
    last = segment_facts(archive, archive.segments()[-1])
    assert last.last_commit is not None
    later = Transaction(1, last.end_lsn + 10, last.end_lsn + 20,
                        last.last_commit + timedelta(seconds=5),
                        [Change("insert", "tags", {"id": "999", "tenant_id": "1", "name": "x"})])
    write_segment(archive, [later], start_lsn=last.end_lsn, end_lsn=later.end_lsn,
                  revision="another_revision", origin=origin_of(settings))
    with pytest.raises(OpsError, match="the schema changed"):
        restore_at(settings, "latest")


def test_the_cli_dry_run_prints_the_plan_as_json(captured: dict, run_cli) -> None:
    at = captured["points"][0]["at"].isoformat()
    done = run_cli("restore", "--tenant", "Globex", "--at", at, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["dryRun"] is True and shown["pointInTime"]["segments"]
    assert shown["pointInTime"]["tables"]["tags"]["inserted"] == 2  # Globex's only
    wrong = run_cli("restore", "--at", "yesterday")
    assert wrong.returncode == 2 and "--at 'yesterday'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_encrypted_backups_and_segments_restore_to_a_time_with_the_identity(
        settings: Settings, conn: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    identity = x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(str(identity) + "\n")
    sealed = replace(settings, backup_encrypt_to=str(identity.to_public()),
                     backup_identity_file=key_file)
    insert_two_tenants(conn, volume=0)
    conn.commit()
    slot = slot_name()
    try:
        drain(sealed, slot, initial_backup=False)
        backup(sealed)
        conn.execute("UPDATE tasks SET title = 'sealed' WHERE tenant_id = 3")
        conn.commit()
        at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        then = tenant_hashes(conn, GLOBEX)
        conn.execute("DELETE FROM comments WHERE tenant_id = 3")
        conn.commit()
        drain(sealed, slot, initial_backup=False)
    finally:
        drop_slot(db_url, slot)
    archive = Archive.at(settings.backup_dir)
    assert all(s.encrypted for s in archive.segments())
    with pytest.raises(OpsError, match="no identity"):
        restore_at(replace(sealed, backup_identity_file=None), at.isoformat(), tenant="Globex")
    restore_at(sealed, at.isoformat(), tenant="Globex", safety_backup=False)
    conn.rollback()
    assert tenant_hashes(conn, GLOBEX) == then


def test_set_based_replay_equals_replaying_each_change_in_order(
        conn: psycopg.Connection) -> None:
    """A tenant's stages take changes in batches; keys touched again and again (inserts,
    updates, key changes, joins, deletes, a TRUNCATE) must end as applying each change on
    its own, in order, does — rows and counts alike; so must skipping the changes to rows a
    stage does not hold (its keys kept in memory), whether the row is the tenant's, not, or
    told by its key."""
    tags = next(t for t in discover_tables(conn) if t.name == "tags")
    rng = random.Random(27)
    changes: list[Change] = []
    for number in range(400):
        key, other = str(rng.randrange(6)), str(rng.randrange(6))
        row = {"id": key, "tenant_id": "1", "name": f"n{number}", "color": rng.choice(
            [None, "red", "", "NULL", 'a "b" \\ {c,d} é\n'])}  # what text[] must quote
        op = "truncate" if number in (97, 194) else rng.choice(
            ["insert", "insert", "update", "update", "move", "delete"])
        if op == "insert":
            changes.append(Change("insert", "tags", row, None))
        elif op == "update":
            changes.append(Change("update", "tags", row, None,
                                  ("color",) if number % 3 == 0 else ()))
        elif op == "move":
            changes.append(Change("update", "tags", {**row, "id": other}, {"id": key}))
        elif op == "delete":
            changes.append(Change("delete", "tags", None, {"id": key}))
        else:
            changes.append(Change("truncate", "tags", None, None))
    txs = [Transaction(i, i, i + 1, datetime(2026, 1, 1, tzinfo=UTC), changes[i:i + 7])
           for i in range(0, len(changes), 7)]
    def member(change: Change) -> bool | None:  # the tenant's, another's, or by its key
        if change.unchanged:  # (the tenant's, it may not be joining: a row it does not hold
            return None  # would be refused, as its TOASTed values are not in the change)
        return (True, True, False, None)[int((change.row or {})["name"][1:]) % 4]

    found = {}
    for name, unconstrained, present in (("one_by_one", False, None),
                                         ("batched", True, None),
                                         ("batched_known_keys", True, {"tags": set()})):
        conn.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM tags WITH NO DATA")
                     .format(sql.Identifier(name)))  # no constraints, as a stage
        counts = Counts()
        apply(Target(conn, [tags], lambda _, name=name: sql.Identifier(name),
                     unconstrained=unconstrained, present=present), txs, counts, member)
        found[name] = (conn.execute(sql.SQL("SELECT id, name, color FROM {} ORDER BY 1, 2")
                                    .format(sql.Identifier(name))).fetchall(),
                       counts.as_json())
        if present is not None:  # the keys kept are the stage's
            assert present["tags"] == {(str(r[0]),) for r in found[name][0]}
    assert found["batched"] == found["one_by_one"] == found["batched_known_keys"]
    assert found["batched"][0] and found["batched"][1]["tags"]["deleted"]


def teststage_keys_are_kept_only_for_keys_whose_text_form_is_fixed(
        conn: psycopg.Connection) -> None:
    """A key kept in memory must compare equal to the text a change carries: a timestamp's
    text depends on the session's TimeZone and DateStyle, so such a table is left to
    statements (a skipped delete would leave a row behind)."""
    tags = next(t for t in discover_tables(conn) if t.name == "tags")
    by_time = replace(tags, name="by_time", columns=tuple(
        replace(c, type="timestamp with time zone") if c.name == "id" else c
        for c in tags.columns))
    conn.execute("CREATE TEMP TABLE stage_tags AS SELECT * FROM tags WITH NO DATA")
    conn.execute("INSERT INTO stage_tags (id, tenant_id, name) VALUES (7, 1, 'x')")
    stages = {"tags": Stage(tags, sql.Identifier("stage_tags"), rows=1),
              "by_time": Stage(by_time, sql.Identifier("stage_tags"), rows=1)}
    assert stage_keys(conn, stages) == {"tags": {("7",)}}


def test_a_commit_stamped_before_time_in_a_segment_after_one_stamped_after_it_is_replayed(
        settings: Settings, conn: psycopg.Connection, captured: dict,
        backup_dir: Path) -> None:
    """A commit's timestamp is taken before its record is written: a commit stamped earlier
    can follow later-stamped ones in the log, across a segment boundary. With TIME between
    the stamps, replay reads on past a segment whose every commit is stamped after TIME."""
    archive = Archive.at(backup_dir)
    last = segment_facts(archive, archive.segments()[-1])
    assert last.last_commit is not None
    xid = list(read_segment(archive, last))[-1].xid
    at = last.last_commit + timedelta(seconds=1)

    def tag(number: int, moment: datetime) -> Transaction:
        lsn = last.end_lsn + 10 * number
        return Transaction(xid + number, lsn, lsn + 5, moment, [Change("insert", "tags", {
            "id": str(990 + number), "tenant_id": "1", "name": f"s{number}"})])

    ms = timedelta(milliseconds=1)
    start = last.end_lsn
    for txs in ([tag(1, at + 2 * ms)], [tag(2, at + 3 * ms), tag(3, at - ms)]):
        write_segment(archive, txs, start_lsn=start, end_lsn=txs[-1].end_lsn,
                      revision=last.revision, origin=origin_of(settings))
        start = txs[-1].end_lsn
    restore_at(settings, at.isoformat(), safety_backup=False)
    conn.rollback()
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM tags WHERE id IN (991, 992, 993)"
                        ).fetchone()[0] == [993]


def _restored_to_then(settings: Settings, conn: psycopg.Connection, db_url: str,
                      change: Callable[[BackupResult], None]) -> dict:
    """A slot, a full backup, `change` (given the backup), then restore --at the moment
    after it: the database's tables as they were at that moment, and as restored."""
    slot = slot_name()
    try:
        drain(settings, slot, initial_backup=False)
        change(backup(settings))
        conn.commit()
        expected = table_hashes(conn)
        at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        conn.commit()
        drain(settings, slot, initial_backup=False)
    finally:
        drop_slot(db_url, slot)
    restore_at(settings, at.isoformat(), safety_backup=False)
    conn.rollback()
    assert table_hashes(conn) == expected
    return expected


def test_a_tenant_restore_on_the_live_database_replays_as_it_happened(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    """A tenant restore as superuser runs with foreign-key triggers off: it deletes and
    inserts again a parent row that changed and leaves its unchanged children in place.
    Replay must not run that delete's ON DELETE CASCADE on the children the database kept:
    restore --at after it equals the database then."""
    insert_two_tenants(conn, volume=0.01)
    conn.commit()

    def change(made: BackupResult) -> None:
        conn.execute("""UPDATE tenants SET settings = '{"changed": true}' WHERE id = 3""")
        conn.commit()
        restore_tenant(settings, made.path, "Globex", safety_backup=False)

    expected = _restored_to_then(settings, conn, db_url, change)
    assert expected["tasks"][0] > 0


def test_changes_to_a_table_with_an_always_identity_key_are_replayed(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    """A GENERATED ALWAYS identity takes no value from an UPDATE (only DEFAULT): replay
    still brings the row's changes, its key moved by SET id = DEFAULT included."""
    conn.execute("CREATE TABLE always_ids (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY "
                 "KEY, t text, twice int GENERATED ALWAYS AS (length(t) * 2) STORED)")
    conn.execute("INSERT INTO always_ids (t) VALUES ('a'), ('b')")
    conn.commit()
    _restored_to_then(settings, conn, db_url, lambda _: conn.execute(
        "UPDATE always_ids SET t = 'changed' WHERE id = 1;"
        "UPDATE always_ids SET id = DEFAULT WHERE id = 2;"
        "INSERT INTO always_ids (t) VALUES ('c')"))
    assert conn.execute("SELECT attidentity FROM pg_attribute WHERE attrelid = "
                        "'always_ids'::regclass AND attname = 'id'").fetchone()[0] == "a"
    assert conn.execute("INSERT INTO always_ids (t) VALUES ('next') RETURNING id"
                        ).fetchone()[0] == 5


def test_changes_to_a_table_identified_by_replica_identity_full_are_replayed(
        settings: Settings, conn: psycopg.Connection, db_url: str) -> None:
    """Capture takes a table without a primary key when REPLICA IDENTITY FULL identifies its
    rows (its refusal suggests it): replay finds each row by the whole old row."""
    conn.execute("CREATE TABLE notes (body text, n int, doc jsonb)")
    conn.execute("ALTER TABLE notes REPLICA IDENTITY FULL")
    conn.execute("""INSERT INTO notes VALUES ('a', 1, '{"k": 1}'), ('a', 1, '{"k": 1}'),
                    ('b', NULL, NULL)""")
    conn.commit()
    _restored_to_then(settings, conn, db_url, lambda _: conn.execute(
        "UPDATE notes SET n = 2 WHERE ctid = (SELECT min(ctid) FROM notes "
        "WHERE body = 'a');"  # one of two identical rows
        "UPDATE notes SET body = 'c' WHERE n IS NULL;"
        "DELETE FROM notes WHERE n = 2"))


def test_a_segment_of_another_database_is_refused_naming_it(
        settings: Settings, conn: psycopg.Connection, captured: dict,
        backup_dir: Path) -> None:
    """A store shared by two databases, or kept across a new cluster (whose LSNs start
    again), holds segments whose ranges fit the chain: replay must not apply them."""
    archive = Archive.at(backup_dir)
    last = segment_facts(archive, archive.segments()[-1])
    assert last.last_commit is not None
    xid = list(read_segment(archive, last))[-1].xid
    stranger = Transaction(xid + 1, last.end_lsn + 10, last.end_lsn + 15,
                           last.last_commit + timedelta(seconds=1),
                           [Change("insert", "tags", {"id": "995", "tenant_id": "1",
                                                      "name": "elsewhere"})])
    info = write_segment(archive, [stranger], start_lsn=last.end_lsn, end_lsn=stranger.end_lsn,
                         revision=last.revision, origin=Origin("7300000000000000999", "other"))
    before = table_hashes(conn)
    with pytest.raises(OpsError) as refused:
        restore_at(settings, "latest", safety_backup=False)
    message = refused.value.message
    assert info.name in message and "other" in message and "\n" not in message, message
    conn.rollback()
    assert table_hashes(conn) == before


@pytest.mark.parametrize("args", [["verify", "--at", "-1m"],
                                  ["verify", "--restore", "backup-x.json.zst", "--at", "-1m"]])
def test_a_verify_at_that_cannot_mean_what_it_says_is_a_usage_line(run_cli,
                                                                    args: list[str]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2 and "--at" in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) <= 2, done.stderr
