"""`import beads`: parse -> map -> write a beads export into a product of the SysTech tenant.

Parsing (`ops.beads.parse`) and mapping (`ops.beads.mapping`) are shared by every writer; only the
writer differs: `db` syncs through `ops.workitems.sync` in ONE transaction (all-or-nothing;
--dry-run rolls it back after counting), `api` goes through the REST API (ops.beads.via_api).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from ops.beads.mapping import kind_of
from ops.beads.prepare import LABELS, ImportOptions, PreparedImport, Target, prepare
from ops.beads.via_api import write_via_api
from ops.core.catalog import discover_tables, require_schema
from ops.core.config import Settings
from ops.core.db import connection, scalar
from ops.core.errors import NotFound, UsageError
from ops.core.output import SILENT, Reporter, suggest
from ops.core.tenancy import SYSTECH_TENANT, require_systech_tenant
from ops.workitems.dependencies import sync_dependencies
from ops.workitems.model import KINDS, KindCounts, SyncResult
from ops.workitems.sync import CHUNK_SIZE, chunks, sync_work_items

SOURCE = "beads"
WARNINGS_SHOWN = 20
@dataclass
class BeadsImportResult:
    file: str
    via: str
    dry_run: bool
    product: str = ""
    product_id: int = 0
    tenant_id: int = 0
    lines: int = 0
    issues: int = 0
    header_lines: int = 0
    memory_lines: int = 0
    other_lines: int = 0
    duplicates: int = 0
    invalid_lines: list[str] = field(default_factory=list)  # skipped under --skip-invalid
    counts: dict[str, KindCounts] = field(default_factory=dict)
    tags_created: int = 0
    comments_added: int = 0
    dependencies_added: int = 0
    dependencies_removed: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def import_beads(settings: Settings, options: ImportOptions,
                 report: Reporter = SILENT) -> BeadsImportResult:
    """Run the whole import; the result says what changed (or would, under dry_run)."""
    started = time.monotonic()
    via_api = options.via == "api"
    if options.via not in ("db", "api"):
        raise UsageError(f"unknown --via {options.via!r}", hint="Use --via db or --via api.")
    report.line("🚀 Starting Beads Import via API..." if via_api else "🚀 Starting Beads Import...")
    prepared = prepare(options, report)
    writer = write_via_api if via_api else write_to_database
    target, sync = writer(settings, prepared, options, report)
    result = _result(options, prepared, target, sync)
    result.seconds = round(time.monotonic() - started, 3)
    print_summary(report, result)
    return result


def write_to_database(settings: Settings, prepared: PreparedImport, options: ImportOptions,
                      report: Reporter) -> tuple[Target, SyncResult]:
    """The `db` writer: everything in one transaction, rolled back under dry_run."""
    with connection(settings) as conn, conn.transaction(force_rollback=options.dry_run):
        require_schema(discover_tables(conn))
        target = find_target(conn, options.product, report)
        sync = SyncResult()
        for chunk in chunks(prepared.items, CHUNK_SIZE):
            sync.merge(sync_work_items(conn, tenant_id=target.tenant_id,
                                       product_id=target.product_id, items=chunk,
                                       report=report))
        for chunk in chunks(prepared.items, CHUNK_SIZE):
            sync.merge(sync_dependencies(conn, tenant_id=target.tenant_id,
                                         product_id=target.product_id, items=chunk,
                                         report=report))
        absent = _count_not_in_file(conn, target.product_id,
                                    [item.external_id for item in prepared.items])
        if absent:
            sync.warnings.append(f"{absent} item(s) imported earlier are not in this file: "
                                 "left as they are (only tombstones delete)")
    return target, sync


def find_target(conn: psycopg.Connection, product: str, report: Reporter = SILENT) -> Target:
    """The SysTech tenant and its product named `product`, or the one-line fix."""
    report.line(f'📦 Finding "{product}" product...')
    tenant_id = require_systech_tenant(conn, needed_by="importing beads issues")
    row = conn.execute("SELECT id, name FROM products WHERE tenant_id = %s AND name = %s",
                       (tenant_id, product)).fetchone()
    if row is None:
        raise NotFound(f'product "{product}" not found in the {SYSTECH_TENANT} tenant: '
                       "nothing was imported",
                       hint=f"Run {suggest('seed sample')} to create it, or pass "
                       "--product NAME for an existing product.")
    report.line(f"✅ Found product: {row[1]} (ID: {row[0]})")
    return Target(tenant_id, row[0], row[1])


def print_summary(report: Reporter, result: BeadsImportResult) -> None:
    report.line("")
    report.line("📊 Summary" + (" (dry run: nothing was written)" if result.dry_run else "")
                + ":")
    for kind in KINDS:
        c = result.counts[kind]
        report.line(f"   {LABELS[kind] + ':':<10} {c.created} created, {c.updated} updated, "
                    f"{c.unchanged} unchanged, {c.skipped} skipped, {c.removed} removed")
    report.line(f"   Tags: {result.tags_created} created · Comments: {result.comments_added} "
                f"added · Dependencies: {result.dependencies_added} added, "
                f"{result.dependencies_removed} removed")
    if result.invalid_lines:
        report.line(f"⏭️  Skipped {len(result.invalid_lines)} invalid line(s):")
        for line in result.invalid_lines[:WARNINGS_SHOWN]:
            report.line(f"   - {line}")
    if result.warnings:
        report.line(f"⚠️  {len(result.warnings)} warning(s):")
        for warning in result.warnings[:WARNINGS_SHOWN]:
            report.line(f"   - {warning}")
        if len(result.warnings) > WARNINGS_SHOWN:
            report.line(f"   ... and {len(result.warnings) - WARNINGS_SHOWN} more (--json "
                        "lists them all)")
    report.line(f"✅ Beads import complete! ({result.seconds:.1f}s)" if not result.dry_run
                else "✅ Beads import dry run complete! Nothing was written.")


def _result(options: ImportOptions, prepared: PreparedImport, target: Target,
            sync: SyncResult) -> BeadsImportResult:
    parsed = prepared.parsed
    counts = {kind: KindCounts() for kind in KINDS}
    for kind, c in sync.counts.items():
        counts[kind].merge(c)
    for issue in parsed.ephemeral:
        counts[kind_of(issue)].skipped += 1
    warnings = list(dict.fromkeys(
        parsed.warnings + prepared.mapped.warnings + sync.summary_warnings()))
    return BeadsImportResult(
        file=str(options.file), via=options.via, dry_run=options.dry_run,
        product=target.product, product_id=target.product_id, tenant_id=target.tenant_id,
        lines=parsed.lines, issues=len(parsed.issues), header_lines=parsed.header_lines,
        memory_lines=parsed.memory_lines, other_lines=parsed.other_lines,
        duplicates=parsed.duplicates, invalid_lines=[str(bad) for bad in parsed.invalid],
        counts=counts, tags_created=sync.tags_created, comments_added=sync.comments_added,
        dependencies_added=sync.dependencies_added,
        dependencies_removed=sync.dependencies_removed,
        warnings=warnings,
    )


def _count_not_in_file(conn: psycopg.Connection, product_id: int, external_ids: list[str]) -> int:
    query = " + ".join(
        f"(SELECT count(*) FROM {kind}s WHERE product_id = %(product)s"
        " AND external_source = %(source)s AND deleted_at IS NULL"
        " AND NOT (external_id = ANY(%(ids)s)))" for kind in KINDS)
    return int(scalar(conn, f"SELECT {query}", {"product": product_id, "source": SOURCE,
                                                "ids": external_ids}))
