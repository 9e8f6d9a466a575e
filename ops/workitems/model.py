"""WorkItem: one epic, feature or task to sync from an external tracker, writer-independent.

The beads importer maps issues to WorkItems (`ops.beads.mapping`); a writer applies them —
directly to the database (`ops.workitems.sync`) or through the REST API's bulk endpoint, which
receives them as JSON via `to_dict()` / `from_dict()` (camelCase keys, ISO 8601 timestamps,
like the backup format). Everything a writer needs is in the record; it never re-reads beads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

KINDS = ("epic", "feature", "task")


@dataclass
class WorkComment:
    """A comment; writers dedupe on (author, created_at, text)."""

    text: str
    author: str | None = None
    created_at: datetime | None = None
    external_id: str | None = None  # beads comment id (int or string), kept as text

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "author": self.author,
                "createdAt": _iso(self.created_at), "externalId": self.external_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkComment:
        return cls(text=data["text"], author=data.get("author"),
                   created_at=_datetime(data.get("createdAt")),
                   external_id=data.get("externalId"))


@dataclass
class WorkDependency:
    """A non-parent dependency: this item `type`s on `depends_on` (an external id)."""

    depends_on: str
    type: str = "blocks"
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dependsOn": self.depends_on, "type": self.type,
                "createdAt": _iso(self.created_at)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkDependency:
        return cls(depends_on=data["dependsOn"], type=data.get("type") or "blocks",
                   created_at=_datetime(data.get("createdAt")))


@dataclass
class WorkItem:
    """One epic/feature/task as it should exist after the sync.

    - `kind` picks the table; `external_id` (with external_source) is the idempotency key.
    - `status` / `priority` are already schema values (ops.schema.models.WORK_STATUSES / PRIORITIES);
      the originals live in `metadata["beads"]`.
    - `parent_external_id` is the chosen parent (epic for a feature; epic, feature or task for
      a task; None for epics). Writers resolve it against items written earlier — lists come
      parents-first, so chunks can be applied in order.
    - `assignee` / `created_by` are the tracker's strings; writers match them to users by email
      or name (the strings also stay in metadata).
    - `tombstone` items are never created; a writer soft-deletes an earlier import of them.
    """

    kind: str
    external_id: str
    title: str
    external_source: str = "beads"
    description: str | None = None
    status: str = "backlog"
    priority: str = "medium"
    task_type: str | None = None
    parent_external_id: str | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[WorkComment] = field(default_factory=list)
    dependencies: list[WorkDependency] = field(default_factory=list)
    assignee: str | None = None
    created_by: str | None = None
    estimate_hours: Decimal | None = None
    due_date: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    deleted_at: datetime | None = None
    tombstone: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with camelCase keys (the API's wire format)."""
        return {
            "kind": self.kind,
            "externalSource": self.external_source,
            "externalId": self.external_id,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "priority": self.priority,
            "taskType": self.task_type,
            "parentExternalId": self.parent_external_id,
            "labels": list(self.labels),
            "comments": [c.to_dict() for c in self.comments],
            "dependencies": [d.to_dict() for d in self.dependencies],
            "assignee": self.assignee,
            "createdBy": self.created_by,
            "estimateHours": None if self.estimate_hours is None else str(self.estimate_hours),
            "dueDate": None if self.due_date is None else self.due_date.isoformat(),
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "closedAt": _iso(self.closed_at),
            "deletedAt": _iso(self.deleted_at),
            "tombstone": self.tombstone,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkItem:
        """Inverse of to_dict; raises KeyError/ValueError on a malformed payload."""
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        estimate = data.get("estimateHours")
        due = data.get("dueDate")
        return cls(
            kind=kind,
            external_source=data.get("externalSource") or "beads",
            external_id=str(data["externalId"]),
            title=str(data["title"]),
            description=data.get("description"),
            status=data.get("status") or "backlog",
            priority=data.get("priority") or "medium",
            task_type=data.get("taskType"),
            parent_external_id=data.get("parentExternalId"),
            labels=[str(x) for x in data.get("labels") or []],
            comments=[WorkComment.from_dict(c) for c in data.get("comments") or []],
            dependencies=[WorkDependency.from_dict(d) for d in data.get("dependencies") or []],
            assignee=data.get("assignee"),
            created_by=data.get("createdBy"),
            estimate_hours=None if estimate is None else Decimal(str(estimate)),
            due_date=None if due is None else date.fromisoformat(due),
            created_at=_datetime(data.get("createdAt")),
            updated_at=_datetime(data.get("updatedAt")),
            closed_at=_datetime(data.get("closedAt")),
            deleted_at=_datetime(data.get("deletedAt")),
            tombstone=bool(data.get("tombstone")),
            metadata=dict(data.get("metadata") or {}),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
