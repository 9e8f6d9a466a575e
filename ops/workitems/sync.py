"""Write WorkItems into epics/features/tasks idempotently: the database writer of the import.

Keyed by (product_id, external_source, external_id). Designed to be called repeatedly inside
ONE caller-owned transaction with consecutive parents-first chunks (the API's bulk endpoint
calls it per request), so it never commits and resolves parents through the database:

    result = SyncResult()
    for chunk in chunks(items):                      # phase 1: items, tags, comments
        result.merge(sync_work_items(conn, tenant_id=t, product_id=p, items=chunk))
    for chunk in chunks(items):                      # phase 2 (ops.workitems.dependencies)
        result.merge(sync_dependencies(conn, tenant_id=t, product_id=p, items=chunk))

Policies:
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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter, to_json
from ops.workitems.model import KINDS, SyncResult, WorkItem


@dataclass
class _Ref:
    """An item row as children need it: its id and the epic/feature it sits under."""

    kind: str
    id: int
    epic_id: int | None = None
    feature_id: int | None = None


ENUM_COLUMNS = {"status": "work_status", "priority": "priority"}
COMMON_COLUMNS = (
    ("title", "text"), ("description", "text"), ("status", "text"), ("priority", "text"),
    ("labels", "text[]"), ("metadata", "jsonb"), ("assignee_id", "bigint"),
    ("created_by", "bigint"), ("due_date", "date"), ("closed_at", "timestamptz"),
    ("deleted_at", "timestamptz"),
)
KIND_COLUMNS = {
    "epic": (),
    "feature": (("epic_id", "bigint"),),
    "task": (("epic_id", "bigint"), ("feature_id", "bigint"), ("parent_task_id", "bigint"),
             ("task_type", "text"), ("estimate_minutes", "integer")),
}
RETURNED = {"epic": "NULL::bigint, NULL::bigint", "feature": "t.epic_id, NULL::bigint",
            "task": "t.epic_id, t.feature_id"}  # columns of a row aliased `t`
# Serialises concurrent imports into one product (a second run waits, then finds no work).
T = TypeVar("T")

LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('tasklets-work-item-sync', %s))"


CHUNK_SIZE = 2000  # items per call: bounds statement size and lets a progress bar move


def chunks(items: Sequence[T], size: int = CHUNK_SIZE, *,
           max_bytes: int | None = None) -> Iterator[list[T]]:
    """Consecutive runs of `items` (order kept: parents first) of at most `size` items and,
    with `max_bytes`, about that many bytes of (already encoded) text; a single larger item
    still goes alone."""
    chunk: list[T] = []
    used = 0
    for item in items:
        # items are sized (bytes) whenever max_bytes is given:
        weight = len(item) if max_bytes is not None else 0  # type: ignore[arg-type]
        if chunk and (len(chunk) >= size or (max_bytes is not None
                                             and used + weight > max_bytes)):
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += weight
    if chunk:
        yield chunk


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

    Runs in a savepoint of the caller's transaction (or its own transaction on an autocommit
    connection) and never commits an outer transaction: the caller owns all-or-nothing
    across chunks. Parents are resolved in the database, so a parent must be in this chunk
    or written by an earlier call. `dry_run` rolls the savepoint back, so the counts are
    exact and nothing stays; for a multi-chunk dry run, roll back the outer transaction.
    Raises OpsError for a parent cycle (the model has already refused invalid values).
    """
    result = SyncResult()
    with conn.transaction(force_rollback=dry_run):
        for source, group in by_source(items, result):
            _ChunkWriter(conn, tenant_id, product_id, source, result, report).run(group)
    return result


def by_source(items: list[WorkItem], result: SyncResult) -> list[tuple[str, list[WorkItem]]]:
    """Group by external_source; a repeated key keeps its last item (with a warning)."""
    groups: dict[str, dict[str, WorkItem]] = {}
    for item in items:
        group = groups.setdefault(item.external_source, {})
        if item.external_id in group:
            result.warnings.append(f"{item.external_id} given twice: using the last one")
            del group[item.external_id]
        group[item.external_id] = item
    return [(source, list(group.values())) for source, group in groups.items()]


class _ChunkWriter:
    """Writes one chunk of one external source: moves, tombstones, upserts, tags, comments."""

    def __init__(self, conn: psycopg.Connection, tenant_id: int, product_id: int, source: str,
                 result: SyncResult, report: Reporter) -> None:
        self.conn, self.tenant_id, self.product_id = conn, tenant_id, product_id
        self.source, self.result, self.report = source, result, report
        self.key = {"tenant": tenant_id, "product": product_id, "source": source}
        self.refs: dict[str, _Ref] = {}

    def run(self, items: list[WorkItem]) -> None:
        self.conn.execute(LOCK_SQL, (self.product_id,))
        live = [i for i in items if not i.tombstone]
        self._remove_tombstones([i for i in items if i.tombstone])
        self._move_changed_kinds(live)
        self.users = _users(self.conn, self.tenant_id)
        wanted = {i.external_id for i in live} | {
            i.parent_external_id for i in live if i.parent_external_id}
        self.refs = item_refs(self.conn, self.product_id, self.source, wanted)
        with self.report.progress("🔄 Syncing work items", total=len(live)) as advance:
            for level in _levels(live):
                for kind in KINDS:
                    batch = [i for i in level if i.kind == kind]
                    if batch:
                        self._upsert(kind, batch)
                        advance(len(batch))
        self._sync_tags(live)
        self._add_comments(live)

    def _remove_tombstones(self, tombstones: list[WorkItem]) -> None:
        if not tombstones:
            return
        ids = [t.external_id for t in tombstones]
        deleted = [t.deleted_at or t.updated_at or datetime.now(UTC) for t in tombstones]
        removed: set[str] = set()
        for kind in KINDS:
            rows = self.conn.execute(
                f"UPDATE {kind}s t SET deleted_at = v.deleted_at"
                " FROM unnest(%(ids)s::text[], %(deleted)s::timestamptz[]) AS v(eid, deleted_at)"
                " WHERE t.product_id = %(product)s AND t.external_source = %(source)s"
                " AND t.external_id = v.eid AND t.deleted_at IS NULL RETURNING t.external_id",
                {**self.key, "ids": ids, "deleted": deleted}).fetchall()
            self.result.counts[kind].removed += len(rows)
            removed.update(r[0] for r in rows)
        for item in tombstones:
            if item.external_id not in removed:
                self.result.counts[item.kind].skipped += 1

    def _move_changed_kinds(self, live: list[WorkItem]) -> None:
        for kind in KINDS:
            others = [i.external_id for i in live if i.kind != kind]
            if not others:
                continue
            rows = self.conn.execute(
                f"DELETE FROM {kind}s WHERE product_id = %(product)s"
                " AND external_source = %(source)s AND external_id = ANY(%(ids)s)"
                " RETURNING external_id", {**self.key, "ids": others}).fetchall()
            for (external_id,) in rows:
                self.result.warnings.append(
                    f"{external_id} is no longer a {kind}: moved (its {kind} row was replaced)")

    def _row(self, item: WorkItem) -> dict[str, Any]:
        row: dict[str, Any] = {
            "external_id": item.external_id, "title": item.title,
            "description": item.description, "status": item.status,
            "priority": item.priority, "labels": item.labels, "metadata": item.metadata,
            "assignee_id": self._user(item.assignee), "created_by": self._user(item.created_by),
            "due_date": item.due_date, "closed_at": item.closed_at, "deleted_at": None,
            "created_at": item.created_at, "updated_at": item.updated_at,
        }
        parent = self._parent(item)
        if item.kind == "feature":
            row["epic_id"] = parent.id if parent and parent.kind == "epic" else None
        elif item.kind == "task":
            row.update(epic_id=None, feature_id=None, parent_task_id=None,
                       task_type=item.task_type or "task",
                       estimate_minutes=item.estimate_minutes)
            if parent is not None:
                row["epic_id"] = parent.id if parent.kind == "epic" else parent.epic_id
                if parent.kind == "feature":
                    row["feature_id"] = parent.id
                elif parent.kind == "task":
                    row["feature_id"] = parent.feature_id
                    row["parent_task_id"] = parent.id
        return row

    def _parent(self, item: WorkItem) -> _Ref | None:
        if not item.parent_external_id or item.kind == "epic":
            return None
        ref = self.refs.get(item.parent_external_id)
        if ref is None or (item.kind == "feature" and ref.kind != "epic"):
            self.result.unresolved_parents.append(
                f"{item.parent_external_id} (of {item.external_id})")
            return None
        return ref

    def _user(self, person: str | None) -> int | None:
        if not person:
            return None
        found = self.users.get(person.strip().lower())
        if found is None:
            unmatched = self.result.unmatched_people
            unmatched[person] = unmatched.get(person, 0) + 1
        return found

    def _upsert(self, kind: str, batch: list[WorkItem]) -> None:
        rows = [self._row(item) for item in batch]
        changed = self.conn.execute(_upsert_sql(kind),
                                    {**self.key, "rows": to_json(rows)}).fetchall()
        counts = self.result.counts[kind]
        for row_id, external_id, epic_id, feature_id, inserted in changed:
            self.refs[external_id] = _Ref(kind, row_id, epic_id, feature_id)
            if inserted:
                counts.created += 1
            else:
                counts.updated += 1
        counts.unchanged += len(rows) - len(changed)

    def _sync_tags(self, live: list[WorkItem]) -> None:
        """Tenant tags for every label (created on demand); item_tags mirror the labels."""
        names = sorted({label for item in live for label in item.labels})
        if names:
            created = self.conn.execute(
                "INSERT INTO tags (tenant_id, name) SELECT %(tenant)s, unnest(%(names)s::text[])"
                " ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id",
                {**self.key, "names": names}).fetchall()
            self.result.tags_created += len(created)
        tag_ids: dict[str, int] = dict(self.conn.execute(
            "SELECT name, id FROM tags WHERE tenant_id = %s AND name = ANY(%s)",
            (self.tenant_id, names)).fetchall()) if names else {}
        for kind in KINDS:
            items = [i for i in live if i.kind == kind]
            if not items:
                continue
            item_ids = [self.refs[i.external_id].id for i in items]
            pairs = [(tag_ids[label], self.refs[i.external_id].id)
                     for i in items for label in i.labels]
            tags_col = [p[0] for p in pairs]
            items_col = [p[1] for p in pairs]
            self.conn.execute(
                f"DELETE FROM item_tags it WHERE it.{kind}_id = ANY(%(items)s) AND NOT EXISTS ("
                " SELECT 1 FROM unnest(%(tags)s::bigint[], %(owners)s::bigint[]) AS w(tag, owner)"
                f" WHERE w.tag = it.tag_id AND w.owner = it.{kind}_id)",
                {"items": item_ids, "tags": tags_col, "owners": items_col})
            if pairs:
                self.conn.execute(
                    f"INSERT INTO item_tags (tag_id, {kind}_id)"
                    " SELECT * FROM unnest(%s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING",
                    (tags_col, items_col))

    def _add_comments(self, live: list[WorkItem]) -> None:
        """Insert comments not already there (same author, created_at and text)."""
        for kind in KINDS:
            rows = [{"item_id": self.refs[i.external_id].id, "author": c.author,
                     "author_id": self.users.get((c.author or "").lower()), "body": c.text,
                     "created_at": c.created_at,
                     "metadata": {"source": self.source, "external_id": c.external_id}}
                    for i in live if i.kind == kind for c in i.comments]
            if not rows:
                continue
            added = self.conn.execute(
                f"INSERT INTO comments (tenant_id, {kind}_id, author_id, author_name, body,"
                " metadata, created_at, updated_at)"
                " SELECT DISTINCT ON (r.item_id, r.author, r.body, r.created_at)"
                "  %(tenant)s, r.item_id, r.author_id, r.author, r.body, r.metadata,"
                "  coalesce(r.created_at, now()), coalesce(r.created_at, now())"
                " FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(item_id bigint, author text,"
                "  author_id bigint, body text, created_at timestamptz, metadata jsonb)"
                " WHERE NOT EXISTS (SELECT 1 FROM comments c"
                f"  WHERE c.{kind}_id = r.item_id AND c.body = r.body"
                "   AND c.author_name IS NOT DISTINCT FROM r.author"
                "   AND c.created_at = coalesce(r.created_at, c.created_at))"
                " RETURNING id", {**self.key, "rows": to_json(rows)}).fetchall()
            self.result.comments_added += len(added)


def _upsert_sql(kind: str) -> str:
    """UPDATE rows that differ + INSERT missing ones, in one statement.

    Not INSERT ... ON CONFLICT: a missing beads created_at must keep the stored value on
    update but default to now() on insert, and `excluded` cannot tell the two apart.
    Returns (id, external_id, epic_id, feature_id, inserted) for every changed row;
    identical rows are neither touched nor returned (they count as unchanged).
    """
    table = f"{kind}s"
    columns = COMMON_COLUMNS + KIND_COLUMNS[kind]
    names = [name for name, _ in columns]
    record = ", ".join(f"{name} {typ}" for name, typ in columns)
    values = [f"r.{name}::{ENUM_COLUMNS[name]}" if name in ENUM_COLUMNS else f"r.{name}"
              for name in names]
    times_new = "coalesce(r.created_at, t.created_at), coalesce(r.updated_at, t.updated_at)"
    match = ("t.product_id = %(product)s AND t.external_source = %(source)s"
             " AND t.external_id = r.external_id")
    returned = RETURNED[kind]
    return f"""
WITH r AS (
  SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS r(external_id text, created_at timestamptz, updated_at timestamptz, {record})
), upd AS (
  UPDATE {table} t SET {", ".join(f"{n} = {v}" for n, v in zip(names, values, strict=True))},
    created_at = coalesce(r.created_at, t.created_at),
    updated_at = coalesce(r.updated_at, t.updated_at)
  FROM r
  WHERE {match}
    AND ({", ".join(f"t.{n}" for n in names)}, t.created_at, t.updated_at)
        IS DISTINCT FROM ({", ".join(values)}, {times_new})
  RETURNING t.id, t.external_id, {returned}
), ins AS (
  INSERT INTO {table} AS t (tenant_id, product_id, external_source, external_id,
                       {", ".join(names)}, created_at, updated_at)
  SELECT %(tenant)s, %(product)s, %(source)s, r.external_id, {", ".join(values)},
         coalesce(r.created_at, now()), coalesce(r.updated_at, r.created_at, now())
  FROM r WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})
  RETURNING t.id, t.external_id, {returned}
)
SELECT *, false FROM upd UNION ALL SELECT *, true FROM ins"""


def _levels(items: list[WorkItem]) -> list[list[WorkItem]]:
    """Split a chunk so every item comes in a later level than its in-chunk parent."""
    by_id = {i.external_id: i for i in items}
    depth: dict[str, int] = {}

    def depth_of(item: WorkItem) -> int:
        chain: list[WorkItem] = []
        node: WorkItem | None = item
        while node is not None and node.external_id not in depth:
            if node in chain:
                names = " → ".join(n.external_id for n in chain[chain.index(node):])
                raise OpsError(f"parent cycle among work items: {names} → {node.external_id}")
            chain.append(node)
            node = by_id.get(node.parent_external_id) if node.parent_external_id else None
        base = depth[node.external_id] + 1 if node is not None else 0
        for offset, member in enumerate(reversed(chain)):
            depth[member.external_id] = base + offset
        return depth[item.external_id]

    levels: dict[int, list[WorkItem]] = {}
    for item in items:
        levels.setdefault(depth_of(item), []).append(item)
    return [levels[n] for n in sorted(levels)]


def item_refs(conn: psycopg.Connection, product_id: int, source: str,
          external_ids: set[str]) -> dict[str, _Ref]:
    if not external_ids:
        return {}
    rows = conn.execute(
        " UNION ALL ".join(
            f"SELECT '{kind}', t.id, t.external_id, {RETURNED[kind]} FROM {kind}s t"
            " WHERE product_id = %(product)s AND external_source = %(source)s"
            " AND external_id = ANY(%(ids)s)" for kind in KINDS),
        {"product": product_id, "source": source, "ids": sorted(external_ids)}).fetchall()
    return {eid: _Ref(kind, row_id, epic_id, feature_id)
            for kind, row_id, eid, epic_id, feature_id in rows}


def _users(conn: psycopg.Connection, tenant_id: int) -> dict[str, int]:
    """lower(email) and lower(name) -> user id; a name shared by two users matches neither."""
    found: dict[str, int] = {}
    by_name: dict[str, set[int]] = {}
    for user_id, email, name in conn.execute(
            "SELECT id, lower(email), lower(name) FROM users WHERE tenant_id = %s", (tenant_id,)):
        found[email] = user_id
        by_name.setdefault(name, set()).add(user_id)
    for name, ids in by_name.items():
        if len(ids) == 1:
            found.setdefault(name, next(iter(ids)))
    return found
