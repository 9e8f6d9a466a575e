"""Phase 2 of a sync: task dependencies, written once every item of the import exists.

Dependencies between two tasks go to task_dependencies (type kept, metadata.source = the
external source); rows from that source the tracker no longer has are removed. Dependencies
involving an epic or feature, or on ids not imported, stay in the item's metadata only.
"""

from __future__ import annotations

import psycopg

from ops.core.output import SILENT, Reporter
from ops.workitems.model import SyncResult, WorkDependency, WorkItem
from ops.workitems.sync import by_source, item_refs


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
    Adds missing task->task edges with their type and removes beads-sourced edges these
    tasks no longer have; edges involving an epic or feature, or a target that was not
    imported, stay in metadata only (one warning). Same transaction rules as phase 1.
    """
    result = SyncResult()
    with conn.transaction(force_rollback=dry_run):
        for source, group in by_source(items, result):
            _sync_dependencies(conn, tenant_id, product_id, source, group, result)
    return result


def _sync_dependencies(conn: psycopg.Connection, tenant_id: int, product_id: int, source: str,
                       items: list[WorkItem], result: SyncResult) -> None:
    tasks = [i for i in items if i.kind == "task" and not i.tombstone]
    wanted = {i.external_id for i in tasks} | {d.depends_on for i in items
                                                for d in i.dependencies}
    refs = item_refs(conn, product_id, source, wanted)
    kept_in_metadata = 0
    edges: dict[tuple[int, int, str], WorkDependency] = {}
    for item in items:
        for dep in item.dependencies:
            target = refs.get(dep.depends_on)
            if item.kind != "task" or item.tombstone or target is None or target.kind != "task":
                kept_in_metadata += 1
                continue
            edges.setdefault((refs[item.external_id].id, target.id, dep.type), dep)
    result.dependencies_in_metadata += kept_in_metadata
    task_ids = [refs[i.external_id].id for i in tasks if i.external_id in refs]
    if not task_ids:
        return
    keys = list(edges)
    columns = ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    removed = conn.execute(
        "DELETE FROM task_dependencies d WHERE d.task_id = ANY(%s)"
        " AND d.metadata->>'source' = %s AND NOT EXISTS ("
        " SELECT 1 FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS w(t, dep, typ)"
        " WHERE w.t = d.task_id AND w.dep = d.depends_on_task_id AND w.typ = d.dependency_type)"
        " RETURNING id", (task_ids, source, *columns)).fetchall()
    result.dependencies_removed += len(removed)
    if keys:
        created = [edges[k].created_at for k in keys]
        added = conn.execute(
            "INSERT INTO task_dependencies (tenant_id, task_id, depends_on_task_id,"
            " dependency_type, metadata, created_at)"
            " SELECT %s, t, dep, typ, jsonb_build_object('source', %s::text), coalesce(c, now())"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[])"
            "  AS w(t, dep, typ, c)"
            " ON CONFLICT DO NOTHING RETURNING id",
            (tenant_id, source, *columns, created)).fetchall()
        result.dependencies_added += len(added)
