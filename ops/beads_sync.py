"""Write WorkItems into epics/features/tasks idempotently: the database writer of the import.

Keyed by (product_id, external_source, external_id). Designed to be called repeatedly inside
ONE caller-owned transaction with consecutive parents-first chunks (the API's bulk endpoint
calls it per request), so it never commits and resolves parents through the database:

    result = SyncResult()
    for chunk in chunks(items):                      # phase 1: items, tags, comments
        result.merge(sync_work_items(conn, tenant_id=t, product_id=p, items=chunk))
    for chunk in chunks(items):                      # phase 2: after every item exists
        result.merge(sync_dependencies(conn, tenant_id=t, product_id=p, items=chunk))

Policies (README "import beads"):
- Items mirror the tracker: title, description, status, priority, labels, parent, metadata,
  assignee, timestamps are overwritten when they differ; an identical row is `unchanged`.
- Labels are mirrored to the tenant's tags (created on demand) and item_tags: added and
  removed. Comments are only added (deduped on author + created_at + text), never deleted.
- Tombstones are never created; an earlier import of one is soft-deleted (`deleted_at` set,
  row and its history kept) and counted `removed`. A live item revives a soft-deleted row.
- An item whose kind changed (task -> feature) is moved: the old row is deleted, a new one
  created, with a warning.
- Dependencies between two tasks go to task_dependencies (type kept, metadata.source =
  'beads'); beads-sourced rows no longer in the tracker are removed. Dependencies involving
  an epic or feature, or on ids not imported, stay in the item's metadata["beads"] only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from ops.output import SILENT, Reporter
from ops.work_items import KINDS, WorkItem


@dataclass
class KindCounts:
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


@dataclass
class SyncResult:
    """What a sync did (or, under dry_run, would do). Mergeable across chunks and phases."""

    counts: dict[str, KindCounts] = field(
        default_factory=lambda: {kind: KindCounts() for kind in KINDS})
    tags_created: int = 0
    comments_added: int = 0
    dependencies_added: int = 0
    dependencies_removed: int = 0
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: SyncResult) -> SyncResult:
        for kind, counts in other.counts.items():
            self.counts.setdefault(kind, KindCounts()).merge(counts)
        self.tags_created += other.tags_created
        self.comments_added += other.comments_added
        self.dependencies_added += other.dependencies_added
        self.dependencies_removed += other.dependencies_removed
        self.warnings.extend(other.warnings)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the API's bulk endpoint returns this)."""
        return {
            "counts": {kind: vars(c).copy() for kind, c in self.counts.items()},
            "tagsCreated": self.tags_created,
            "commentsAdded": self.comments_added,
            "dependenciesAdded": self.dependencies_added,
            "dependenciesRemoved": self.dependencies_removed,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncResult:
        return cls(
            counts={kind: KindCounts(**c) for kind, c in data.get("counts", {}).items()},
            tags_created=data.get("tagsCreated", 0),
            comments_added=data.get("commentsAdded", 0),
            dependencies_added=data.get("dependenciesAdded", 0),
            dependencies_removed=data.get("dependenciesRemoved", 0),
            warnings=list(data.get("warnings", [])),
        )


def sync_work_items(
    conn: psycopg.Connection,
    *,
    tenant_id: int,
    product_id: int,
    items: list[WorkItem],
    dry_run: bool = False,
    report: Reporter = SILENT,
) -> SyncResult:
    """Phase 1: upsert `items` (parents-first), their tags and comments; soft-delete tombstones.

    Never commits: the caller owns the transaction (all-or-nothing across chunks). Parents
    are resolved in the database, so a parent must be in this chunk (earlier in the list) or
    written by an earlier call. `dry_run` runs everything inside a savepoint that is rolled
    back, so the counts are exact; for a multi-chunk dry run, roll back the caller's
    transaction instead.
    """
    raise NotImplementedError


def sync_dependencies(
    conn: psycopg.Connection,
    *,
    tenant_id: int,
    product_id: int,
    items: list[WorkItem],
    dry_run: bool = False,
    report: Reporter = SILENT,
) -> SyncResult:
    """Phase 2: make task_dependencies of these items' tasks match their `dependencies`.

    Call after phase 1 has written every item (targets are looked up in the database).
    Adds missing task->task edges with their type, removes beads-sourced edges these items
    no longer have; other edges are left to metadata (see the module docstring).
    """
    raise NotImplementedError
