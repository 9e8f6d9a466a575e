"""The work-item model: one epic, feature or task to sync from an external tracker, and what a
sync did. One definition for every writer and the API.

The beads importer maps issues to WorkItems (`ops.beads.mapping`); a writer applies them -
directly to the database (`ops.workitems.sync`) or through the REST API's bulk endpoint, which
receives exactly these models as JSON (camelCase keys, ISO 8601 timestamps, like the backup
format). Validation carries the limits every writer shares (ops.core.limits), and assignment
is validated too, so a WorkItem always holds storable values. Everything a writer needs is in
the record; it never re-reads the tracker.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from ops.core.fields import (
    CamelModel,
    Indexed,
    InputModel,
    JsonObject,
    Minutes,
    Name,
    Priority,
    Status,
    Text,
    Title,
)
from ops.core.limits import MAX_LIST_ITEMS

KINDS = ("epic", "feature", "task")
Kind = Literal["epic", "feature", "task"]


def _as_text(value: Any) -> Any:
    """Tracker ids that are numbers (beads comment ids) are kept as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Validated(InputModel):
    model_config = ConfigDict(validate_assignment=True)


class WorkComment(_Validated):
    """A comment; writers dedupe on (author, created_at, text)."""

    text: Text
    author: Text | None = None
    created_at: datetime | None = None
    external_id: Annotated[Text | None, BeforeValidator(_as_text)] = None


class WorkDependency(_Validated):
    """A non-parent dependency: this item `type`s on `depends_on` (an external id)."""

    depends_on: Text
    type: Indexed = "blocks"
    created_at: datetime | None = None


class WorkItem(_Validated):
    """One epic/feature/task as it should exist after the sync.

    - `kind` picks the table; `external_id` (with external_source) is the idempotency key.
    - `status` / `priority` are schema values (ops.core.vocabulary); the tracker's originals
      live in `metadata`.
    - `parent_external_id` is the chosen parent (epic for a feature; epic, feature or task for
      a task; None for epics). Writers resolve it against items written earlier - lists come
      parents-first, so chunks can be applied in order.
    - `assignee` / `created_by` are the tracker's strings; writers match them to users by email
      or name (the strings also stay in metadata).
    - `tombstone` items are never created; a writer soft-deletes an earlier import of them.
    """

    kind: Kind
    external_id: Name
    title: Title
    external_source: Name = "beads"
    description: Text | None = None
    status: Status = "backlog"
    priority: Priority = "medium"
    task_type: Text | None = None
    parent_external_id: Text | None = None
    labels: list[Indexed] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    comments: list[WorkComment] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    dependencies: list[WorkDependency] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    assignee: Text | None = None
    created_by: Text | None = None
    estimate_minutes: Minutes | None = None
    due_date: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    deleted_at: datetime | None = None
    tombstone: bool = False
    metadata: JsonObject = Field(default_factory=dict)


class KindCounts(CamelModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    removed: int = 0

    def merge(self, other: KindCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.removed += other.removed


SHOWN = 8  # names listed in a summarised warning


class SyncResult(CamelModel):
    """What a sync did (or, under dry_run, would do). Mergeable across chunks and phases; the
    API's bulk endpoint returns it as is."""

    counts: dict[str, KindCounts] = Field(
        default_factory=lambda: {kind: KindCounts() for kind in KINDS})
    tags_created: int = 0
    comments_added: int = 0
    dependencies_added: int = 0
    dependencies_removed: int = 0
    # Summarised once by summary_warnings(), so chunked calls do not repeat them:
    dependencies_in_metadata: int = 0  # involve an epic/feature or an item not imported
    unmatched_people: dict[str, int] = Field(default_factory=dict)  # assignee/author -> uses
    unresolved_parents: list[str] = Field(default_factory=list)  # "parent (of child)"
    warnings: list[str] = Field(default_factory=list)

    def summary_warnings(self) -> list[str]:
        """`warnings` plus one line per summarised kind of problem."""
        lines = list(self.warnings)
        if self.unresolved_parents:
            lines.append(f"{len(self.unresolved_parents)} parent(s) not found, items left "
                         f"without a parent: {', '.join(self.unresolved_parents[:SHOWN])}")
        if self.dependencies_in_metadata:
            lines.append(f"{self.dependencies_in_metadata} dependency(ies) involving epics, "
                         "features or items not imported: kept in metadata only")
        if self.unmatched_people:
            top = sorted(self.unmatched_people.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(f"{len(top)} person(s) not matched to users by email or name (kept "
                         "in metadata): " + ", ".join(f"{name} ({n})" for name, n in top[:SHOWN]))
        return lines

    def merge(self, other: SyncResult) -> SyncResult:
        for kind, counts in other.counts.items():
            self.counts.setdefault(kind, KindCounts()).merge(counts)
        self.tags_created += other.tags_created
        self.comments_added += other.comments_added
        self.dependencies_added += other.dependencies_added
        self.dependencies_removed += other.dependencies_removed
        self.dependencies_in_metadata += other.dependencies_in_metadata
        for name, n in other.unmatched_people.items():
            self.unmatched_people[name] = self.unmatched_people.get(name, 0) + n
        self.unresolved_parents.extend(other.unresolved_parents)
        self.warnings.extend(other.warnings)
        return self
