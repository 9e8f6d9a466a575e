"""`import beads` against the real database: mapping, idempotency, updates, atomicity, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
from pydantic import ValidationError
from support.beads import (
    FIXTURES,
    counts,
    dependencies,
    item,
    make_systech,
    run_import,
    snapshot,
    tags_of,
    write_jsonl,
)

import ops.beads.importer
from ops.beads.mapping import map_issues
from ops.beads.parse import parse_file
from ops.core.errors import OpsError
from ops.dev.beads_fixtures import write_synthetic
from ops.seed.builtin import seed_lookups, seed_sample
from ops.workitems.dependencies import sync_dependencies
from ops.workitems.model import SyncResult
from ops.workitems.sync import sync_work_items


@pytest.fixture
def systech(conn: psycopg.Connection) -> tuple[int, int]:
    return make_systech(conn)


def test_first_import_creates_epics_features_and_tasks_with_their_hierarchy(
        settings, conn, systech):
    result = run_import(settings, "modern.jsonl")
    assert counts(result) == {"epic": (1, 0, 0, 0, 0), "feature": (2, 0, 0, 1, 0),
                              "task": (10, 0, 0, 3, 0)}  # skipped: tombstones + 2 wisps
    epic = item(conn, "epic", "bd-a3f8")
    f1 = item(conn, "feature", "bd-f1")
    assert f1["epic_id"] == epic["id"]
    hashing = item(conn, "task", "bd-a3f8.1")  # edge to the feature wins over dotted prefix
    assert (hashing["feature_id"], hashing["epic_id"]) == (f1["id"], epic["id"])
    rate = item(conn, "task", "bd-a3f8.2")  # dotted prefix: under the epic
    assert (rate["epic_id"], rate["feature_id"], rate["task_type"]) == (epic["id"], None, "bug")
    sub = item(conn, "task", "bd-a3f8.2.1")  # task under task: a subtask
    assert (sub["parent_task_id"], sub["epic_id"]) == (rate["id"], epic["id"])
    assert item(conn, "task", "bd-t1") is None and item(conn, "feature", "bd-t2") is None
    assert item(conn, "task", "bd-wisp-e1") is None


def test_import_maps_fields_users_and_keeps_the_originals(settings, conn, systech):
    run_import(settings, "modern.jsonl")
    ramesh = conn.execute("SELECT id FROM users WHERE email = 'ramesh@systech.com'").fetchone()[0]
    hashing = item(conn, "task", "bd-a3f8.1")
    assert (hashing["status"], hashing["priority"]) == ("done", "critical")
    assert hashing["assignee_id"] == ramesh
    assert hashing["estimate_minutes"] == 90
    assert hashing["closed_at"] == datetime(2025, 1, 5, tzinfo=UTC)
    epic = item(conn, "epic", "bd-a3f8")
    assert epic["created_by"] == ramesh  # owner email
    assert epic["created_at"] == datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert epic["updated_at"] == datetime(2025, 1, 3, 4, 30, tzinfo=UTC)  # +05:30
    assert "## Acceptance Criteria" in epic["description"]
    assert epic["metadata"]["beads"]["priority"] == 1
    assert (epic["external_source"], epic["tenant_id"]) == ("beads", systech[0])
    unknown = item(conn, "task", "bd-a3f8.2.1")
    assert unknown["assignee_id"] is None
    assert unknown["metadata"]["beads"]["assignee"] == "nobody-we-know"
    assert item(conn, "task", "bd-np")["priority"] == "critical"
    assert item(conn, "task", "bd-dup")["title"] == "Duplicate, newer copy"


def test_labels_comments_and_dependencies_are_written(settings, conn, systech):
    result = run_import(settings, "modern.jsonl")
    assert tags_of(conn, "epic", "bd-a3f8") == {"auth", "gh:788"}
    assert tags_of(conn, "feature", "bd-f2") == {"auth"}
    assert result.tags_created == 3
    comment = conn.execute("SELECT author_name, author_id, body, created_at FROM comments"
                           " WHERE epic_id IS NOT NULL").fetchall()
    ramesh = conn.execute("SELECT id FROM users WHERE name = 'Ramesh'").fetchone()[0]
    assert comment == [("Ramesh", ramesh, "Kickoff", datetime(2025, 1, 2, 4, tzinfo=UTC))]
    # tombstone comments are not imported
    assert conn.execute("SELECT count(*) FROM comments").fetchone()[0] == 1
    assert dependencies(conn) == {("bd-d1", "bd-a3f8.2", "blocks"), ("bd-d1", "bd-x1", "related")}
    # the edge to a feature and the dangling ones stay in metadata
    kept = {d["depends_on_id"] for d in item(conn, "task", "bd-d1")["metadata"]["beads"][
        "dependencies"]}
    assert {"bd-f2", "bd-wisp-x1", "external:gh:788"} <= kept
    assert any("not in the file" in w for w in result.warnings)


def test_reimporting_the_same_file_changes_nothing(settings, conn, systech):
    run_import(settings, "modern.jsonl")
    before = snapshot(conn)
    again = run_import(settings, "modern.jsonl")
    assert counts(again) == {"epic": (0, 0, 1, 0, 0), "feature": (0, 0, 2, 1, 0),
                             "task": (0, 0, 10, 3, 0)}
    assert (again.tags_created, again.comments_added, again.dependencies_added,
            again.dependencies_removed) == (0, 0, 0, 0)
    assert snapshot(conn) == before


def test_newer_export_updates_reparents_relabels_tombstones_and_adds(settings, conn, systech):
    run_import(settings, "modern.jsonl")
    epic_id = item(conn, "epic", "bd-a3f8")["id"]
    result = run_import(settings, "modern_v2.jsonl")
    assert counts(result)["epic"] == (0, 1, 0, 0, 0)
    assert counts(result)["task"][:2] == (1, 3)  # bd-new; bd-a3f8.2, bd-a3f8.2.1, bd-d1
    assert counts(result)["task"][4] == 1  # bd-x2 tombstoned
    epic = item(conn, "epic", "bd-a3f8")
    assert (epic["id"], epic["title"]) == (epic_id, "Auth overhaul v2")
    assert tags_of(conn, "epic", "bd-a3f8") == {"auth"}  # gh:788 removed
    assert epic["labels"] == ["auth"]
    rate = item(conn, "task", "bd-a3f8.2")  # re-parented by a new edge to bd-f2
    assert (rate["feature_id"], rate["epic_id"]) == (item(conn, "feature", "bd-f2")["id"], None)
    assert tags_of(conn, "task", "bd-a3f8.2") == {"security", "ops"}
    assert item(conn, "task", "bd-a3f8.2.1")["status"] == "done"
    assert item(conn, "task", "bd-x2")["deleted_at"] == datetime(2025, 2, 1, tzinfo=UTC)
    new = item(conn, "task", "bd-new")
    assert new["feature_id"] == item(conn, "feature", "bd-f1")["id"]
    assert dependencies(conn) == {("bd-d1", "bd-x1", "related")}
    assert result.dependencies_removed == 1
    assert result.comments_added == 1
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 11  # never duplicated
    again = run_import(settings, "modern_v2.jsonl")
    assert all(c[0] == c[1] == c[4] == 0 for c in counts(again).values())


def test_include_ephemeral_imports_wisps(settings, conn, systech):
    result = run_import(settings, "modern.jsonl", include_ephemeral=True)
    assert counts(result)["task"][:4] == (12, 0, 0, 1)  # only the tombstone skipped
    assert item(conn, "task", "bd-w2")["task_type"] == "molecule"


def test_a_tombstone_of_an_item_never_imported_is_skipped(settings, conn, systech, tmp_path):
    path = write_jsonl(tmp_path / "i.jsonl", {
        "id": "bd-gone", "title": "Gone", "status": "tombstone", "original_type": "epic",
        "deleted_at": "2025-01-01T00:00:00Z"})
    result = run_import(settings, path)
    assert counts(result)["epic"] == (0, 0, 0, 1, 0)
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 0


def test_a_live_item_revives_its_soft_deleted_row(settings, conn, systech):
    run_import(settings, "modern.jsonl")
    run_import(settings, "modern_v2.jsonl")
    x2 = item(conn, "task", "bd-x2")
    result = run_import(settings, "modern.jsonl")
    revived = item(conn, "task", "bd-x2")
    assert revived["id"] == x2["id"] and revived["deleted_at"] is None
    assert result.counts["task"].updated >= 1


def test_dry_run_reports_the_same_counts_and_writes_nothing(settings, conn, systech):
    before = snapshot(conn)
    dry = run_import(settings, "modern.jsonl", dry_run=True)
    assert snapshot(conn) == before
    real = run_import(settings, "modern.jsonl")
    assert counts(dry) == counts(real)
    assert (dry.tags_created, dry.comments_added, dry.dependencies_added) == \
        (real.tags_created, real.comments_added, real.dependencies_added)
    before = snapshot(conn)
    dry_v2 = run_import(settings, "modern_v2.jsonl", dry_run=True)
    assert snapshot(conn) == before
    assert counts(dry_v2) == counts(run_import(settings, "modern_v2.jsonl"))


def test_a_malformed_line_writes_nothing(settings, conn, systech):
    with pytest.raises(OpsError, match="line 2: malformed JSON"):
        run_import(settings, "malformed.jsonl")
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


def test_skip_invalid_imports_the_rest_and_lists_the_skipped_lines(settings, conn, systech):
    result = run_import(settings, "malformed.jsonl", skip_invalid=True)
    assert counts(result)["task"][0] == 2
    assert [line.split(":")[0] for line in result.invalid_lines] == ["line 2", "line 3"]


def test_a_failure_midway_rolls_back_everything(settings, conn, systech, monkeypatch):
    def broken(*args, **kwargs):
        raise OpsError("injected failure in the dependency phase")

    monkeypatch.setattr(ops.beads.importer, "sync_dependencies", broken)
    monkeypatch.setattr(ops.beads.importer, "CHUNK_SIZE", 4)  # several committed-looking chunks
    with pytest.raises(OpsError, match="injected"):
        run_import(settings, "modern.jsonl")
    assert all(rows == [] for rows in snapshot(conn).values())


def test_a_cycle_writes_nothing_and_names_it(settings, conn, systech):
    with pytest.raises(OpsError, match="bd-c1"):
        run_import(settings, "cycle.jsonl")
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


def test_missing_tenant_or_product_says_which_seed_to_run(settings, conn):
    with pytest.raises(OpsError, match="SysTech tenant does not exist") as err:
        run_import(settings, "early.jsonl")
    assert "seed lookups" in err.value.hint
    make_systech(conn, product="Other")
    with pytest.raises(OpsError, match='product "Tasklets" not found') as err:
        run_import(settings, "early.jsonl")
    assert "--product" in err.value.hint
    assert counts(run_import(settings, "early.jsonl", product="Other"))["task"][0] == 2


def test_import_into_the_seeded_tasklets_product_matches_seeded_users(settings, conn):
    seed_lookups(conn)
    seed_sample(conn)
    seeded = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    ramesh = conn.execute("SELECT id FROM users WHERE email = 'ramesh@systech.com'").fetchone()[0]
    result = run_import(settings, "modern.jsonl")
    assert counts(result)["task"][0] == 10
    assert item(conn, "task", "bd-a3f8.1")["assignee_id"] == ramesh
    assert conn.execute("SELECT count(*) FROM tasks WHERE external_source IS DISTINCT FROM"
                        " 'beads'").fetchone()[0] == seeded  # the sample items are untouched
    again = run_import(settings, "modern.jsonl")
    assert sum(c.created + c.updated for c in again.counts.values()) == 0


def test_an_item_whose_type_changed_moves_to_the_other_table(settings, conn, systech, tmp_path):
    issue = {"id": "bd-k", "title": "Kind", "issue_type": "task", "priority": 2,
             "labels": ["x"], "updated_at": "2025-01-01T00:00:00Z"}
    run_import(settings, write_jsonl(tmp_path / "a.jsonl", issue))
    result = run_import(settings, write_jsonl(tmp_path / "b.jsonl",
                                              {**issue, "issue_type": "feature"}))
    assert item(conn, "task", "bd-k") is None
    assert tags_of(conn, "feature", "bd-k") == {"x"}
    assert counts(result)["feature"][0] == 1
    assert any("no longer a task" in w for w in result.warnings)


def test_chunked_calls_in_one_transaction_match_a_single_call(settings, conn, systech, db_url):
    """The API's bulk endpoint calls the writer per request: the result must not differ."""
    tenant_id, product_id = systech
    items = map_issues(parse_file(FIXTURES / "modern.jsonl").issues).items
    total = SyncResult()
    with psycopg.connect(db_url) as other, other.transaction():
        for start in range(0, len(items), 3):
            total.merge(sync_work_items(other, tenant_id=tenant_id, product_id=product_id,
                                        items=items[start:start + 3]))
        for start in range(0, len(items), 3):
            total.merge(sync_dependencies(other, tenant_id=tenant_id, product_id=product_id,
                                          items=items[start:start + 3]))
    chunked = snapshot(conn)
    assert total.counts["task"].created == 10
    assert total.dependencies_added == 2
    again = run_import(settings, "modern.jsonl")  # the whole-file writer sees no difference
    assert all(c[0] == c[1] == 0 for c in counts(again).values())
    assert snapshot(conn) == chunked


def test_a_work_item_cannot_hold_values_outside_the_schema(conn, systech):
    """Invalid values never reach a writer: the model refuses them on assignment too."""
    items = map_issues(parse_file(FIXTURES / "early.jsonl").issues).items
    with pytest.raises(ValidationError, match="status"):
        items[-1].status = "open"
    sync_work_items(conn, tenant_id=systech[0], product_id=systech[1], items=items)
    assert conn.execute("SELECT count(*) FROM tasks WHERE status::text = 'open'").fetchone()[0] == 0


def test_synthetic_export_imports_then_reimports_unchanged(settings, conn, systech, tmp_path):
    path = write_synthetic(tmp_path / "s.jsonl", 600)
    first = run_import(settings, path)
    created = sum(c.created for c in first.counts.values())
    assert created > 500
    assert conn.execute("SELECT count(*) FROM tasks WHERE parent_task_id IS NOT NULL"
                        ).fetchone()[0] > 0
    again = run_import(settings, path)
    assert sum(c.unchanged for c in again.counts.values()) == created
    assert sum(c.created + c.updated for c in again.counts.values()) == 0


# --- CLI ---------------------------------------------------------------------------------

def test_cli_prints_the_seed_style_lines(run_cli, systech):
    done = run_cli("import", "beads", "--file", str(FIXTURES / "modern.jsonl"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for line in ("🚀 Starting Beads Import...", '📦 Finding "Tasklets" product...',
                 f"✅ Found product: Tasklets (ID: {systech[1]})",
                 "Epics:     1 created, 0 updated, 0 unchanged, 0 skipped, 0 removed",
                 "Tasks:     10 created, 0 updated, 0 unchanged, 3 skipped, 0 removed",
                 "warning(s):", "✅ Beads import complete!"):
        assert line in out


def test_cli_json_reports_counts_and_reads_beads_file_from_the_env(run_cli, systech):
    done = run_cli("import", "beads", "--json",
                   env={"BEADS_FILE": str(FIXTURES / "early.jsonl")})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["counts"]["task"]["created"] == 2
    assert data["counts"]["feature"]["created"] == 1
    assert data["product"] == "Tasklets" and data["dry_run"] is False


def test_cli_dry_run_says_nothing_was_written(run_cli, conn, systech):
    done = run_cli("import", "beads", "--dry-run", "--file", str(FIXTURES / "early.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "dry run" in done.stdout.lower()
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


def test_cli_malformed_file_exits_1_with_one_line_and_a_hint(run_cli, conn, systech):
    done = run_cli("import", "beads", "--file", str(FIXTURES / "malformed.jsonl"))
    assert done.returncode == 1
    assert "❌ 2 invalid line(s)" in done.stderr and "💡" in done.stderr
    assert "Traceback" not in done.stderr
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


def test_cli_missing_file_exits_1(run_cli, systech, tmp_path):
    done = run_cli("import", "beads", "--file", str(tmp_path / "none.jsonl"))
    assert done.returncode == 1 and "beads file not found" in done.stderr


HOSTILE_LINES = {
    "deep": '{"id": "bd-deep", "title": "x", "metadata": ' + "[" * 200_000 + "]" * 200_000
            + "}",
    "surrogate": '{"id": "bd-sur", "title": "lone \\ud800 surrogate"}',
    "huge minutes": '{"id": "bd-m30", "title": "x", "estimated_minutes": 1' + "0" * 30 + "}",
    "big minutes": '{"id": "bd-m11", "title": "x", "estimated_minutes": 100000000000}',
    "long label": json.dumps({"id": "bd-lab", "title": "x", "labels": ["l" * 10_000]}),
    "long id": json.dumps({"id": "i" * 10_000, "title": "x"}),
    "long dependency": json.dumps({"id": "bd-dep", "title": "x", "dependencies": [
        {"type": "blocks", "depends_on_id": "d" * 10_000}]}),
}


@pytest.mark.security
def test_hostile_lines_are_named_invalid_lines_and_skippable(settings, conn, systech, tmp_path):
    path = write_jsonl(tmp_path / "hostile.jsonl", _issue_line("bd-good"), *HOSTILE_LINES.values())
    before = snapshot(conn)
    with pytest.raises(OpsError) as refused:
        run_import(settings, path)
    assert f"{len(HOSTILE_LINES)} invalid line(s)" in refused.value.message
    assert len(refused.value.message) < 2000
    assert snapshot(conn) == before
    result = run_import(settings, path, skip_invalid=True)
    assert [bad.split(":")[0] for bad in result.invalid_lines] == [
        f"line {n}" for n in range(2, 2 + len(HOSTILE_LINES))]
    assert [row[0] for row in conn.execute("SELECT external_id FROM tasks")] == ["bd-good"]


@pytest.mark.security
def test_only_text_labels_become_tags_and_the_original_list_is_kept(settings, conn, systech,
                                                                     tmp_path):
    path = write_jsonl(tmp_path / "labels.jsonl", {"id": "bd-1", "title": "x",
                                                   "labels": [1, None, {"x": 1}, "real"]})
    run_import(settings, path)
    assert tags_of(conn, "task", "bd-1") == {"real"}
    task = item(conn, "task", "bd-1")
    assert task["labels"] == ["real"]
    assert task["metadata"]["beads"]["labels"] == [1, None, {"x": 1}, "real"]


def _issue_line(issue_id: str) -> str:
    return json.dumps({"id": issue_id, "title": "fine", "issue_type": "task"})


# Values that reached the database (or Python's number and date limits) unchecked: each is
# one invalid line naming its line number and field.
BAD_VALUES = {
    "labels": [5, True],
    "dependencies": [7, [{"depends_on_id": int("9" * 2000)}],
                     [{"depends_on_id": "bd-good", "type": "t" * 3000}]],
    "priority": ["1e400", int("7" * 4000)],
    "due_at": ["9999-12-31T23:59:59-23:59"],
    "created_at": ["9999-12-31T23:59:59-00:01"],
}


def _bad_value_lines() -> list[tuple[str, str]]:
    lines = []
    for name, values in BAD_VALUES.items():
        for n, value in enumerate(values):
            issue = json.dumps({"id": f"bd-{name}-{n}", "title": "x", name: "@@"})
            raw = value if isinstance(value, str) and name == "priority" else json.dumps(value)
            lines.append((name, issue.replace('"@@"', raw)))
    return lines


@pytest.mark.parametrize("field, line", _bad_value_lines(),
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(_bad_value_lines())])
def test_each_bad_value_is_one_line_naming_line_and_field(settings, conn, systech, tmp_path,
                                                          field, line):
    path = write_jsonl(tmp_path / "bad.jsonl", _issue_line("bd-good"), line)
    before = snapshot(conn)
    with pytest.raises(OpsError) as refused:
        run_import(settings, path)
    message = refused.value.message
    assert "1 invalid line(s)" in message and "line 2: " in message, message
    assert field in message and len(message) < 600, message
    assert snapshot(conn) == before
    result = run_import(settings, path, skip_invalid=True)
    assert [bad.split(":")[0] for bad in result.invalid_lines] == ["line 2"]
    assert [row[0] for row in conn.execute("SELECT external_id FROM tasks")] == ["bd-good"]


def test_offsets_postgresql_refuses_are_read_in_utc(settings, conn, systech, tmp_path):
    path = write_jsonl(
        tmp_path / "ok.jsonl", _issue_line("bd-good"),
        {"id": "bd-2", "title": "x", "created_at": "2025-01-02T03:04:05-15:30",
         "updated_at": "2025-01-02T03:04:05-23:59",
         "due_at": "2025-03-01T23:00:00-12:00",
         "dependencies": [{"depends_on_id": "bd-good", "type": "relates-to"}]})
    run_import(settings, path)
    task = item(conn, "task", "bd-2")
    assert task["created_at"] == datetime(2025, 1, 2, 18, 34, 5, tzinfo=UTC)
    assert task["updated_at"] == datetime(2025, 1, 3, 3, 3, 5, tzinfo=UTC)
    assert dependencies(conn) == {("bd-2", "bd-good", "relates-to")}
