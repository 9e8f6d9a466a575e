"""Parsing and mapping of beads exports: pure functions, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.beads import FIXTURES, write_jsonl

from ops.beads.mapping import map_issues, map_priority, map_status
from ops.beads.parse import parse_file, parse_lines, parse_timestamp
from ops.core.errors import OpsError
from ops.dev.beads_fixtures import synthetic_issues, write_synthetic
from ops.workitems.model import WorkItem


def _issue(issue_id: str, **fields) -> dict:
    return {"id": issue_id, "title": f"Title {issue_id}", "priority": 2,
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
            **fields}


def _edge(child: str, parent: str, dep_type: str = "parent-child") -> dict:
    return {"issue_id": child, "depends_on_id": parent, "type": dep_type}


def _mapped(tmp_path: Path, *issues: dict) -> dict[str, WorkItem]:
    parsed = parse_file(write_jsonl(tmp_path / "issues.jsonl", *issues))
    return {item.external_id: item for item in map_issues(parsed.issues).items}


def _modern() -> dict[str, WorkItem]:
    items = map_issues(parse_file(FIXTURES / "modern.jsonl").issues).items
    return {i.external_id: i for i in items}


# --- parsing -----------------------------------------------------------------------------

def test_early_minimal_format_parses_and_maps_every_issue():
    parsed = parse_file(FIXTURES / "early.jsonl")
    assert [i.id for i in parsed.issues] == ["bd-1", "bd-2", "bd-3"]
    items = {i.external_id: i for i in map_issues(parsed.issues).items}
    assert items["bd-1"].kind == "task" and items["bd-1"].status == "done"
    assert items["bd-2"].kind == "feature"
    assert items["bd-3"].task_type == "bug"
    assert [(d.depends_on, d.type) for d in items["bd-3"].dependencies] == [("bd-1", "blocks")]


def test_header_and_memory_lines_are_skipped_and_counted():
    parsed = parse_file(FIXTURES / "modern.jsonl")
    assert parsed.header_lines == 1
    assert parsed.memory_lines == 2
    assert "mem-1" not in {i.id for i in parsed.issues}


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2025-01-02T03:04:05.123456789Z", datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ("2025-01-02T03:04:05.5-07:00",
     datetime(2025, 1, 2, 3, 4, 5, 500000, tzinfo=timezone(timedelta(hours=-7)))),
    ("2025-01-02T08:34:05+05:30", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2025-01-02 03:04:05z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2025-01-02T03:04:05,25Z", datetime(2025, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ("2025-01-02T03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    (None, None),
])
def test_timestamps_with_offsets_and_up_to_nine_fraction_digits_normalise(text, expected):
    value = parse_timestamp(text)
    assert value == expected
    assert value is None or value.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01T00:00:00Z", "2025-01-02T25:00:00Z", 5])
def test_unparseable_timestamps_are_rejected(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_duplicate_ids_keep_the_later_updated_at_with_a_warning():
    parsed = parse_file(FIXTURES / "modern.jsonl")
    dup = [i for i in parsed.issues if i.id == "bd-dup"]
    assert len(dup) == 1 and dup[0].title == "Duplicate, newer copy"
    assert parsed.duplicates == 1
    assert any("duplicate id bd-dup" in w for w in parsed.warnings)


def test_duplicate_with_equal_updated_at_keeps_the_later_line(tmp_path):
    parsed = parse_file(write_jsonl(tmp_path / "i.jsonl", _issue("bd-1", title="first"),
                                    _issue("bd-1", title="second")))
    assert [i.title for i in parsed.issues] == ["second"]


def test_ephemeral_and_wisp_issues_are_skipped_unless_included():
    parsed = parse_file(FIXTURES / "modern.jsonl")
    assert {i.id for i in parsed.ephemeral} == {"bd-wisp-e1", "bd-w2"}
    assert not {"bd-wisp-e1", "bd-w2"} & {i.id for i in parsed.issues}
    included = parse_file(FIXTURES / "modern.jsonl", include_ephemeral=True)
    assert {"bd-wisp-e1", "bd-w2"} <= {i.id for i in included.issues}


def test_tombstones_are_recognised_by_status_or_deleted_at():
    parsed = parse_file(FIXTURES / "modern.jsonl")
    tombstones = {i.id for i in parsed.issues if i.tombstone}
    assert tombstones == {"bd-t1", "bd-t2"}
    items = {i.external_id: i for i in map_issues(parsed.issues).items}
    assert items["bd-t1"].tombstone and items["bd-t1"].kind == "task"  # from original_type
    assert items["bd-t2"].kind == "feature"
    assert items["bd-t2"].deleted_at == datetime(2025, 1, 6, 3, 0, 0, 123000, tzinfo=UTC)


def test_malformed_line_and_missing_title_abort_with_line_numbers():
    with pytest.raises(OpsError) as err:
        parse_file(FIXTURES / "malformed.jsonl")
    assert "2 invalid line(s)" in err.value.message
    assert "line 2: malformed JSON" in err.value.message
    assert "line 3: bd-notitle: missing title" in err.value.message
    assert "--skip-invalid" in err.value.hint


def test_skip_invalid_keeps_the_valid_lines_and_lists_the_others():
    parsed = parse_file(FIXTURES / "malformed.jsonl", skip_invalid=True)
    assert [i.id for i in parsed.issues] == ["bd-ok1", "bd-ok2"]
    assert [bad.line for bad in parsed.invalid] == [2, 3]


@pytest.mark.parametrize(("line", "reason"), [
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"title": "no id"}', "missing id"),
    ('{"id": "bd-1", "title": "x", "created_at": "soon"}', "not an RFC 3339 timestamp"),
    ('{"id": "bd-1", "title": "x", "dependencies": [{"type": "blocks"}]}', "depends_on_id"),
    ('{"id": "bd-1", "title": "x", "labels": "a,b"}', "labels must be a list"),
    ('{"id": "bd-1", "title": "x", "estimated_minutes": NaN}', "NaN is not valid JSON"),
    ('{"id": "bd-1", "title": "x", "notes": "a\\u0000b"}', "NUL character"),
])
def test_invalid_lines_say_why(line, reason):
    parsed = parse_lines([line.encode()])
    assert len(parsed.invalid) == 1 and reason in parsed.invalid[0].reason


def test_blank_lines_are_ignored_and_lines_of_any_length_parse(tmp_path):
    long_description = "x" * 300_000
    path = write_jsonl(tmp_path / "i.jsonl", "", _issue("bd-1", description=long_description),
                       "   ", _issue("bd-2"))
    parsed = parse_file(path)
    assert [i.id for i in parsed.issues] == ["bd-1", "bd-2"]
    assert parsed.invalid == []
    assert map_issues(parsed.issues).items[0].description == long_description


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(OpsError, match="beads file not found"):
        parse_file(tmp_path / "nope.jsonl")


# --- mapping -----------------------------------------------------------------------------

def test_unknown_types_statuses_and_fields_are_tolerated():
    items = _modern()
    assert (items["bd-x1"].kind, items["bd-x1"].task_type) == ("task", "decision")
    assert items["bd-x1"].status == "in_progress"  # hooked
    assert items["bd-x1"].priority == "high"  # "P1"
    assert (items["bd-x2"].task_type, items["bd-x2"].status, items["bd-x2"].priority) == \
        ("convoy", "done", "none")
    assert items["bd-x3"].status == "backlog"
    assert items["bd-x3"].metadata["beads"]["status"] == "someday"
    assert "future_field" not in items["bd-x1"].model_dump_json()


def test_missing_priority_is_beads_zero_which_is_critical():
    item = _modern()["bd-np"]
    assert item.priority == "critical"
    assert item.metadata["beads"]["priority_missing"] is True


@pytest.mark.parametrize(("beads", "ours"), [("open", "todo"), ("in_progress", "in_progress"),
                                             ("blocked", "blocked"), ("deferred", "backlog"),
                                             ("closed", "done"), ("pinned", "todo"),
                                             ("hooked", "in_progress"), ("done", "done"),
                                             (None, "todo"), ("someday", None)])
def test_status_mapping(beads, ours):
    assert map_status(beads) == ours


@pytest.mark.parametrize(("beads", "ours"), [(0, "critical"), (1, "high"), (2, "medium"),
                                             (3, "low"), (4, "none"), (None, "critical"),
                                             ("P3", "low"), ("2", "medium"), (9, None),
                                             ("urgent", None)])
def test_priority_mapping(beads, ours):
    assert map_priority(beads) == ours


def test_parent_edge_wins_over_the_dotted_prefix():
    items = _modern()
    assert items["bd-a3f8.1"].parent_external_id == "bd-f1"  # edge, not bd-a3f8
    assert items["bd-f1"].parent_external_id == "bd-a3f8"


def test_dotted_prefix_is_the_parent_without_an_edge_and_the_parent_field_is_ignored():
    items = _modern()
    # bd-a3f8.2 has "parent": "bd-f2" (computed, disagreeing) but no edge
    assert items["bd-a3f8.2"].parent_external_id == "bd-a3f8"
    assert items["bd-a3f8.2.1"].parent_external_id == "bd-a3f8.2"  # subtask


def test_dotted_prefix_that_is_not_in_the_file_leaves_no_parent(tmp_path):
    items = _mapped(tmp_path, _issue("bd-9.1"))
    assert items["bd-9.1"].parent_external_id is None


def test_several_parent_edges_pick_the_same_parent_whatever_their_order(tmp_path):
    features = [_issue("bd-fa", issue_type="feature"), _issue("bd-fb", issue_type="feature")]
    one = _mapped(tmp_path, *features, _issue(
        "bd-t", dependencies=[_edge("bd-t", "bd-fb"), _edge("bd-t", "bd-fa")]))
    two = _mapped(tmp_path, *features, _issue(
        "bd-t", dependencies=[_edge("bd-t", "bd-fa"), _edge("bd-t", "bd-fb")]))
    assert one["bd-t"].parent_external_id == two["bd-t"].parent_external_id == "bd-fa"
    parsed = parse_file(FIXTURES / "modern.jsonl")
    warnings = map_issues(parsed.issues).warnings
    assert any("bd-m1 has 2 parent edges" in w for w in warnings)


def test_parent_child_cycle_is_an_error_naming_the_cycle():
    with pytest.raises(OpsError) as err:
        map_issues(parse_file(FIXTURES / "cycle.jsonl").issues)
    assert "cycle" in err.value.message
    for issue_id in ("bd-c1", "bd-c2", "bd-c3"):
        assert issue_id in err.value.message


def test_unsupported_parent_kinds_are_kept_in_metadata_with_a_warning(tmp_path):
    path = write_jsonl(tmp_path / "i.jsonl", _issue("bd-t", issue_type="task"),
                       _issue("bd-f", issue_type="feature", dependencies=[_edge("bd-f", "bd-t")]),
                       _issue("bd-e", issue_type="epic", dependencies=[_edge("bd-e", "bd-f")]))
    result = map_issues(parse_file(path).issues)
    items = {i.external_id: i for i in result.items}
    assert items["bd-f"].parent_external_id is None
    assert items["bd-f"].metadata["beads"]["unlinked_parent"] == "bd-t"
    assert items["bd-e"].metadata["beads"]["unlinked_parent"] == "bd-f"
    assert sum("cannot be placed under" in w for w in result.warnings) == 2


def test_dangling_and_external_targets_are_one_warning_and_stay_in_metadata():
    result = map_issues(parse_file(FIXTURES / "modern.jsonl").issues)
    dangling = [w for w in result.warnings if "not in the file" in w]
    assert len(dangling) == 1
    assert "bd-wisp-x1" in dangling[0] and "external:gh:788" in dangling[0]
    d1 = {i.external_id: i for i in result.items}["bd-d1"]
    assert {(d.depends_on, d.type) for d in d1.dependencies} == {
        ("bd-a3f8.2", "blocks"), ("bd-x1", "related"), ("bd-f2", "waits-for")}
    kept = {d["depends_on_id"] for d in d1.metadata["beads"]["dependencies"]}
    assert {"bd-wisp-x1", "external:gh:788"} <= kept


def test_items_come_parents_first():
    items = map_issues(parse_file(FIXTURES / "modern.jsonl").issues).items
    position = {item.external_id: n for n, item in enumerate(items)}
    for item in items:
        if item.parent_external_id:
            assert position[item.parent_external_id] < position[item.external_id]


def test_design_acceptance_criteria_and_notes_are_kept():
    epic = _modern()["bd-a3f8"]
    assert epic.description == ("Rework login end to end.\n\n## Design\n\nServer-side sessions."
                                "\n\n## Acceptance Criteria\n\nUsers can log in and out."
                                "\n\n## Notes\n\nSee RFC 12.")
    assert epic.metadata["beads"]["design"] == "Server-side sessions."
    assert epic.labels == ["auth", "gh:788"]
    assert [(c.author, c.text) for c in epic.comments] == [("Ramesh", "Kickoff")]
    assert epic.created_by == "ramesh@systech.com"  # owner, as created_by is missing


def test_task_fields_map_estimate_assignee_and_closed_at():
    task = _modern()["bd-a3f8.1"]
    assert task.estimate_minutes == 90
    assert task.assignee == "ramesh@systech.com"
    assert task.closed_at == datetime(2025, 1, 5, tzinfo=UTC)
    assert task.metadata["beads"]["close_reason"] == "done"


@pytest.mark.parametrize(("minutes", "stored"), [(10, 10), (0, 0), (2**31 - 1, 2**31 - 1),
                                                 (10.4, 10), ("soon", None)])
def test_estimated_minutes_are_stored_as_whole_minutes(minutes, stored):
    line = json.dumps({"id": "bd-1", "title": "x", "estimated_minutes": minutes})
    (task,) = map_issues(parse_lines([line]).issues).items
    assert task.estimate_minutes == stored


def test_work_items_round_trip_through_json():
    for item in map_issues(parse_file(FIXTURES / "modern.jsonl").issues).items:
        assert WorkItem.model_validate_json(item.model_dump_json()) == item


def test_work_item_rejects_an_unknown_kind_status_or_field():
    for bad in ({"kind": "story"}, {"status": "someday"}, {"colour": "red"}):
        with pytest.raises(ValueError, match="kind|status|colour"):
            WorkItem.model_validate({"kind": "task", "externalId": "x", "title": "t", **bad})
    item = WorkItem(kind="task", external_id="x", title="t")
    with pytest.raises(ValueError, match="priority"):
        item.priority = "urgent"  # assignment is validated too


def test_synthetic_generator_is_deterministic_and_maps_cleanly(tmp_path):
    assert list(synthetic_issues(120, seed=3)) == list(synthetic_issues(120, seed=3))
    parsed = parse_file(write_synthetic(tmp_path / "s.jsonl", 500))
    assert parsed.invalid == [] and parsed.header_lines == 1 and parsed.memory_lines == 1
    items = map_issues(parsed.issues).items
    kinds = {item.kind for item in items}
    assert kinds == {"epic", "feature", "task"}
    assert any(i.parent_external_id and i.parent_external_id.count(".") >= 2 for i in items)
