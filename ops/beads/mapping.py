"""Map parsed beads issues to WorkItems: pure, no database.

- Kind: issue_type `epic` -> epic, `feature` -> feature, anything else -> task with the beads
  type kept in task_type (bug, chore, decision, custom...). Tombstones use `original_type`.
- Parent: `parent-child` dependencies (child = issue_id, parent = depends_on_id); without an
  edge, the dotted id prefix (bd-a3f8.1 -> bd-a3f8) when that id is a live issue of the file.
  The computed `parent` field is ignored (it can disagree with the edges; kept in
  metadata). Several parent edges -> the first live target in id order, with a warning.
  Allowed links: feature -> epic; task -> epic, feature or task (subtask). Anything else
  is kept as metadata["beads"]["unlinked_parent"], with a warning.
  A cycle in the chosen parents is an error naming it.
- Description: `description`, then `design`, `acceptance_criteria` and `notes` appended as
  "## Design" / "## Acceptance Criteria" / "## Notes" sections, so the app shows them; the
  raw fields also stay in metadata["beads"] with every other beads field we keep.
- Status and priority -> the schema enums (tables below), originals in metadata["beads"].
  A missing priority is P0 (beads omits zero values, and reads a missing priority as 0).
- Dependencies other than parent-child become WorkItem.dependencies when their target is a
  live issue of the file; others (bd-wisp-*, external:..., deleted) stay in metadata only,
  reported in one warning.
- Items come parents-first (depth, then epic/feature/task, then file order).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from pydantic import ValidationError

from ops.beads.parse import BeadsIssue, parse_timestamp
from ops.core.errors import OpsError
from ops.workitems.model import KINDS, Kind, WorkComment, WorkDependency, WorkItem

__all__ = ["MappingResult", "WorkItem", "map_issues", "map_priority", "map_status"]

PARENT_CHILD = "parent-child"
STATUS_MAP = {
    "open": "todo",
    "todo": "todo",
    "pinned": "todo",
    "in_progress": "in_progress",
    "in-progress": "in_progress",
    "hooked": "in_progress",
    "blocked": "blocked",
    "review": "in_review",
    "in_review": "in_review",
    "deferred": "backlog",
    "backlog": "backlog",
    "closed": "done",
    "done": "done",
    "resolved": "done",
    "completed": "done",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "wontfix": "cancelled",
    "tombstone": "cancelled",
}
UNKNOWN_STATUS = "backlog"
PRIORITY_MAP = {0: "critical", 1: "high", 2: "medium", 3: "low", 4: "none"}
MISSING_PRIORITY = 0
# beads fields kept verbatim in metadata["beads"] (everything else is mapped or derived).
KEPT_FIELDS = (
    "status", "priority", "issue_type", "design", "acceptance_criteria", "notes", "assignee",
    "owner", "created_by", "close_reason", "external_ref", "estimated_minutes", "started_at",
    "due_at", "defer_until", "parent", "dependencies", "metadata", "deleted_at", "deleted_by",
    "delete_reason", "original_type", "ephemeral", "wisp", "pinned", "source_repo",
)
SECTIONS = (("design", "Design"), ("acceptance_criteria", "Acceptance Criteria"),
            ("notes", "Notes"))
ALLOWED_PARENTS = {"epic": (), "feature": ("epic",), "task": KINDS}
DANGLING_SHOWN = 8


@dataclass
class MappingResult:
    items: list[WorkItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dangling_targets: list[str] = field(default_factory=list)


def map_status(status: Any) -> str | None:
    """The schema status for a beads status, or None when unknown."""
    if not isinstance(status, str) or not status.strip():
        return "todo"  # early exports omit status for open issues
    return STATUS_MAP.get(status.strip().lower())


def map_priority(priority: Any) -> str | None:
    """0-4 (also "2", "P2") -> critical..none; missing -> critical; None when unusable."""
    if priority is None or priority == "":
        return PRIORITY_MAP[MISSING_PRIORITY]
    if isinstance(priority, str):
        priority = priority.strip().upper().removeprefix("P")
    try:
        number = int(priority)
    except (TypeError, ValueError):
        return None
    if isinstance(priority, float) and priority != number:
        return None
    return PRIORITY_MAP.get(number)


def kind_of(issue: BeadsIssue) -> Kind:
    issue_type = _beads_type(issue)
    if issue_type == "epic":
        return "epic"
    return "feature" if issue_type == "feature" else "task"


def _beads_type(issue: BeadsIssue) -> str:
    raw = issue.raw
    value = raw.get("issue_type")
    if issue.tombstone and raw.get("original_type"):
        value = raw["original_type"]
    if not isinstance(value, str) or not value.strip() or value == "tombstone":
        return "task"
    return value.strip().lower()


def map_issues(issues: list[BeadsIssue]) -> MappingResult:
    """WorkItems for `issues` (already deduplicated), parents first; OpsError on a cycle."""
    result = MappingResult()
    live = {i.id: i for i in issues if not i.tombstone}
    kinds = {i.id: kind_of(i) for i in issues}
    parents = _choose_parents(issues, live, result.warnings)
    _refuse_cycles(parents)

    unknown_status: Counter[str] = Counter()
    bad_priority: Counter[str] = Counter()
    dangling: dict[str, None] = {}
    items: list[WorkItem] = []
    for issue in issues:
        try:
            item = _item(issue, kinds[issue.id])
        except ValidationError as exc:  # parsing checks the limits first; this is the backstop
            problem = exc.errors()[0]
            raise OpsError(f"{issue.id} (line {issue.line}): {problem['msg']}",
                           hint="Fix that issue in the export, or leave it out.") from None
        if issue.tombstone:
            items.append(item)
            continue
        parent = parents.get(issue.id)
        if parent is not None:
            if kinds[parent] in ALLOWED_PARENTS[item.kind]:
                item.parent_external_id = parent
            else:
                item.metadata["beads"]["unlinked_parent"] = parent
                result.warnings.append(
                    f"{issue.id} ({item.kind}) cannot be placed under {parent} "
                    f"({kinds[parent]}): parent kept in metadata only")
        status = map_status(issue.raw.get("status"))
        if status is None:
            unknown_status[str(issue.raw.get("status"))] += 1
            status = UNKNOWN_STATUS
        item.status = status
        priority = map_priority(issue.raw.get("priority"))
        if priority is None:
            bad_priority[str(issue.raw.get("priority"))] += 1
            priority = "medium"
        item.priority = priority
        item.dependencies = _dependencies(issue, live, dangling)
        items.append(item)

    if unknown_status:
        result.warnings.append(
            f"unknown status(es) mapped to {UNKNOWN_STATUS}: {_counted(unknown_status)}")
    if bad_priority:
        result.warnings.append(f"unusable priority(ies) mapped to medium: "
                               f"{_counted(bad_priority)}")
    result.dangling_targets = list(dangling)
    if dangling:
        shown = ", ".join(result.dangling_targets[:DANGLING_SHOWN])
        more = len(dangling) - DANGLING_SHOWN
        result.warnings.append(
            f"{len(dangling)} dependency target(s) not in the file, kept in metadata only: "
            f"{shown}" + (f" (+{more} more)" if more > 0 else ""))
    result.items = _parents_first(items, parents)
    return result


def _choose_parents(issues: list[BeadsIssue], live: dict[str, BeadsIssue],
                    warnings: list[str]) -> dict[str, str]:
    """child id -> parent id, for live children whose parent is a live issue of the file."""
    edges: dict[str, list[str]] = {}
    for issue in issues:
        for dep in issue.raw.get("dependencies") or []:
            if dep.get("type") != PARENT_CHILD:
                continue
            child = str(dep.get("issue_id") or issue.id)
            target = str(dep["depends_on_id"])
            if target != child and target not in edges.setdefault(child, []):
                edges[child].append(target)
    parents: dict[str, str] = {}
    for child in live:
        targets = sorted(edges.get(child, []))
        if targets:
            present = [t for t in targets if t in live]
            if len(targets) > 1:
                chosen = present[0] if present else "none in the file"
                warnings.append(f"{child} has {len(targets)} parent edges "
                                f"({', '.join(targets)}): using {chosen}")
            if present:
                parents[child] = present[0]
            continue
        prefix = child.rpartition(".")[0]
        if prefix and prefix in live:
            parents[child] = prefix
    return parents


def _refuse_cycles(parents: dict[str, str]) -> None:
    done: set[str] = set()
    for start in sorted(parents):
        path: list[str] = []
        seen: set[str] = set()
        node: str | None = start
        while node is not None and node not in done:
            if node in seen:
                cycle = path[path.index(node):] + [node]
                raise OpsError(
                    f"parent-child cycle in the beads file: {' → '.join(cycle)}",
                    hint="Remove one of those parent-child dependencies (`bd dep remove`) "
                    "and export again.")
            seen.add(node)
            path.append(node)
            node = parents.get(node)
        done.update(path)


def _parents_first(items: list[WorkItem], parents: dict[str, str]) -> list[WorkItem]:
    depth: dict[str, int] = {}

    def depth_of(item_id: str) -> int:
        chain = []
        node: str | None = item_id
        while node is not None and node not in depth:
            chain.append(node)
            node = parents.get(node)
        base = depth[node] + 1 if node is not None else 0
        for offset, member in enumerate(reversed(chain)):
            depth[member] = base + offset
        return depth[item_id]

    order = {kind: n for n, kind in enumerate(KINDS)}
    positions = {id(item): n for n, item in enumerate(items)}
    return sorted(items, key=lambda it: (depth_of(it.external_id), order[it.kind],
                                         positions[id(it)]))


def _item(issue: BeadsIssue, kind: Kind) -> WorkItem:
    raw = issue.raw
    kept = {name: raw[name] for name in KEPT_FIELDS if raw.get(name) not in (None, "", [])}
    if "priority" not in raw:
        kept["priority_missing"] = True
    if any(not isinstance(label, str) for label in raw.get("labels") or []):
        kept["labels"] = raw["labels"]  # only text labels become tags; the rest stay here
    item = WorkItem(
        kind=kind,
        external_id=issue.id,
        title=issue.title,
        description=_description(raw),
        task_type=_beads_type(issue) if kind == "task" else None,
        labels=_labels(raw.get("labels")),
        comments=_comments(raw.get("comments")),
        assignee=_text(raw.get("assignee")),
        created_by=_text(raw.get("created_by")) or _text(raw.get("owner")),
        estimate_minutes=_minutes(raw.get("estimated_minutes")),
        due_date=issue.times["due_at"].astimezone(UTC).date() if "due_at" in issue.times
        else None,
        created_at=issue.times.get("created_at"),
        updated_at=issue.times.get("updated_at") or issue.times.get("created_at"),
        closed_at=issue.times.get("closed_at"),
        tombstone=issue.tombstone,
        metadata={"beads": kept},
    )
    if issue.tombstone:
        item.status = "cancelled"
        item.deleted_at = issue.times.get("deleted_at") or item.updated_at
    return item


def _description(raw: dict[str, Any]) -> str | None:
    parts = []
    if _text(raw.get("description")):
        parts.append(raw["description"].strip())
    for name, heading in SECTIONS:
        if _text(raw.get(name)):
            parts.append(f"## {heading}\n\n{raw[name].strip()}")
    return "\n\n".join(parts) or None


def _labels(labels: Any) -> list[str]:
    seen: dict[str, None] = {}
    for label in labels or []:
        text = label.strip() if isinstance(label, str) else ""
        if text:
            seen[text] = None
    return list(seen)


def _comments(comments: Any) -> list[WorkComment]:
    result = []
    for comment in comments or []:
        text = comment.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        external = comment.get("id")
        result.append(WorkComment(
            text=text,
            author=_text(comment.get("author")),
            created_at=parse_timestamp(comment.get("created_at")),
            external_id=None if external is None else str(external),
        ))
    return result


def _dependencies(issue: BeadsIssue, live: dict[str, BeadsIssue],
                  dangling: dict[str, None]) -> list[WorkDependency]:
    result: dict[tuple[str, str], WorkDependency] = {}
    for dep in issue.raw.get("dependencies") or []:
        dep_type = str(dep.get("type") or "blocks")
        if dep_type == PARENT_CHILD:
            if str(dep["depends_on_id"]) not in live and str(
                    dep.get("issue_id") or issue.id) == issue.id:
                dangling[str(dep["depends_on_id"])] = None
            continue
        target = str(dep["depends_on_id"])
        if target == issue.id:
            continue
        if target not in live:
            dangling[target] = None
            continue
        result.setdefault((target, dep_type), WorkDependency(
            depends_on=target, type=dep_type, created_at=parse_timestamp(dep.get("created_at"))))
    return list(result.values())


def _minutes(minutes: Any) -> int | None:
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
        return None
    return round(minutes)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _counted(counter: Counter[str]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in counter.most_common())
