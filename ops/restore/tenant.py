"""One tenant at a time: restore, reset and copy a single tenant's rows, each in ONE
transaction, while every other tenant keeps working.

A tenant restore stages the tenant's rows from the file (ops.restore.staging; nothing live is
touched or locked yet), then: lock the tenant (its rows in the anchor tables, FOR UPDATE: no
row can join it any more) → safety backup of its current rows (locked FOR UPDATE as they are
read) → delete them, children first → load the staged rows → check every reference into and
out of them → commit. Any failure before the commit rolls everything back.

What other tenants' sessions can wait for: nothing. Rows are locked only if they are the
tenant's; DELETE and INSERT take ROW EXCLUSIVE on the tables, as every writer does, which
never conflict; no LOCK TABLE, no TRUNCATE; sequences only move forward through setval
(ALTER SEQUENCE, which the full restore uses, would block every nextval until commit).
Foreign keys: as superuser the triggers are off (session_replication_role = replica) and
references are checked explicitly, rows referenced outside the tenant share-locked; as a
table owner they are deferred and checked by PostgreSQL too - but ON DELETE actions cannot
be deferred, so a row outside the tenant that references it is refused up front.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg import sql

from ops.backup.archive import Archive
from ops.backup.encryption import Identity, identities_for
from ops.backup.files import BackupRef
from ops.backup.format import describe_partial
from ops.backup.reader import BackupReader
from ops.core.catalog import Table, current_revision, discover_tables, require_schema
from ops.core.config import Settings, mask_url
from ops.core.db import DatabaseIdentity, connect, first_line, identity_of, is_superuser
from ops.core.errors import OpsError, Refused, UsageError
from ops.core.guard import refuse_production, unconfirmed
from ops.core.output import SILENT, Reporter, suggest
from ops.core.scratch import scratch_dir
from ops.core.tenancy import Tenant, TenantScope, tenant_scope
from ops.restore.apply import (
    DEFERRED,
    REPLICA,
    Options,
    Replay,
    RestoreResult,
    check_revision,
    database_error,
    write_safety_backup,
)
from ops.restore.checks import (
    advance_sequences,
    refuse_references_out,
    validate_staged_references,
)
from ops.restore.fetched import fetched
from ops.restore.staging import (
    Stage,
    analyze_stages,
    create_stages,
    regenerate_public_ids,
    remap_ids,
    rename_tenant,
    settle_slug,
    stage_backup,
)
from ops.restore.tenant_rows import (
    Gone,
    begin,
    busy_error,
    collision_error,
    count_loads,
    count_rows,
    delete_rows,
    find_collisions,
    lock_tenant,
    refuse_dangling,
    refuse_outside_references,
    same_row,
)
from ops.restore.tenant_target import check_target


@dataclass
class TenantRestoreResult(RestoreResult):
    tenant: Tenant | None = None  # as the backup has it
    deleted: dict[str, int] = field(default_factory=dict)  # live rows of the tenant deleted
    inserted: dict[str, int] = field(default_factory=dict)  # rows written (`tables`: restored)
    total_deleted: int = 0
    total_inserted: int = 0
    other_rows_skipped: int = 0  # rows of other tenants in the file (a full backup)
    new_ids: bool = False
    new_tenant_id: int | None = None
    renamed_to: str | None = None
    into_tenant: Tenant | None = None  # the live tenant replaced under fresh ids
    public_ids_regenerated: dict[str, int] = field(default_factory=dict)


def restore_tenant(settings: Settings, source: str | Path | BackupRef | None, tenant: str, *,
                   archive: Archive | None = None,
                   identity: Identity = None, new_ids: bool = False,
                   rename: str | None = None, into: str | None = None,
                   safety_backup: bool = True, allow_production: bool = False,
                   allow_schema_mismatch: bool = False, dry_run: bool = False,
                   action: str = "restore a tenant into",
                   report: Reporter = SILENT,
                   replay: Replay | None = None) -> TenantRestoreResult:
    """Replace the rows of the tenant `tenant` (a name or an id) with the backup's.

    `source` is latest (the newest backup that is not of another tenant), a name in
    BACKUP_DIR, a path or an object URL: a backup of that tenant, or a full one; `identity`
    (default BACKUP_IDENTITY_FILE) decrypts an encrypted one. With `new_ids` the tenant
    is added instead, every id drawn fresh from this database's sequences (nothing is
    replaced; `rename` if its name is taken). Otherwise the live tenant replaced must be the
    backup's (ops.restore.tenant_target), or the one `into` names. `replay` (restore --at) is
    called with the connection, the tenant scope, the stages and the tenant's id once its
    rows are staged: it brings the staged rows forward before they replace the live ones.
    """
    if into is not None and new_ids:
        raise UsageError("--into-tenant names a tenant to replace; --new-ids adds one: use "
                         "one of them")
    started = time.monotonic()
    options = Options(safety_backup and not new_ids, allow_production, allow_schema_mismatch,
                      dry_run=dry_run, replay=replay)
    archive = archive or Archive.from_settings(settings)
    identities = identities_for(settings, identity)
    if isinstance(source, BackupRef):
        ref = source
    elif source in (None, "", "latest"):
        latest = archive.latest_for_tenant(tenant, identities=identities)
        # none: resolving latest raises the error that lists what there is
        ref = latest.ref if latest is not None else archive.resolve("latest")
    else:
        ref = archive.resolve(str(source))
    result = TenantRestoreResult(source=str(ref), dry_run=dry_run, new_ids=new_ids,
                                 renamed_to=rename)
    report.line(f"🔄 Starting restore of tenant {tenant}...")
    report.line(f"📂 Reading backup: {ref}")
    with fetched(ref, report) as local, BackupReader(local, identities=identities) as reader, \
            connect(settings) as conn:
        result.timestamp, result.layout = reader.timestamp, reader.layout
        report.line(f"📅 Backup timestamp: {reader.timestamp or 'unknown'}")
        tables = discover_tables(conn)
        require_schema(tables)
        scope = tenant_scope(tables)
        result.database_revision = current_revision(conn)
        meta = reader.tail_meta
        if meta is not None:
            check_revision(meta, result, options, report)
            if describe_partial(meta) is not None:
                raise UsageError(f"{ref.name} is a partial backup ({describe_partial(meta)}): "
                                 "a tenant restore needs every table; nothing was changed",
                                 hint="Pick a full backup, or a backup of the tenant.")
        if not dry_run:
            refuse_production(conn, settings, action=action, allow_production=allow_production)
        result.fk_mode = REPLICA if is_superuser(conn) else DEFERRED
        conn.commit()
        _restore(conn, settings, archive, reader, scope, tenant, into, result, options,
                 report)
    result.total_rows = sum(result.tables.values())
    result.total_deleted = sum(result.deleted.values())
    result.total_inserted = sum(result.inserted.values())
    result.seconds = round(time.monotonic() - started, 3)
    if not dry_run:
        report.line(f"✅ Tenant restore completed: {_loaded_as(result)}")
        report.line(f"📊 Rows: {result.total_rows} restored ({result.total_deleted} deleted, "
                    f"{result.total_inserted} inserted, the rest identical); other tenants "
                    "untouched")
    return result


def _loaded_as(result: TenantRestoreResult) -> Tenant | None:
    if result.tenant is not None and result.into_tenant is not None:
        return Tenant(result.into_tenant.id, result.tenant.name)
    if result.tenant is None or not result.new_ids:
        return result.tenant
    return Tenant(result.new_tenant_id or 0, result.renamed_to or result.tenant.name)


def _restore(conn: psycopg.Connection, settings: Settings, archive: Archive,
             reader: BackupReader, scope: TenantScope, ref: str, into: str | None,
             result: TenantRestoreResult, options: Options, report: Reporter) -> None:
    safety: BackupRef | None = None
    committing = False
    try:
        begin(conn)
        stages = create_stages(conn, scope.tables)
        tenant = result.tenant = stage_backup(conn, reader, scope, stages, ref, result, options,
                                              report)
        if options.replay is not None:  # first: the checks below see the rows as replayed
            report.line(f"🔁 Applying tenant {tenant}'s changes after the backup...")
            options.replay(conn, scope, stages, tenant.id)
        refuse_references_out(conn, scope.tables, lambda name: stages[name].ident,
                              scope.placements, str(tenant))
        result.checksums_verified = reader.verify_meta()
        check_revision(reader.meta, result, options, report)
        if not result.new_ids:
            result.into_tenant = check_target(
                conn, scope, tenant, DatabaseIdentity.from_meta((reader.meta or {}).get("source")),
                reader.ref.name, into)
        into_live = result.into_tenant
        for stage in stages.values():
            if not stage.in_file:
                result.emptied.append(stage.table.name)
                report.line(f"➖ {stage.table.name}: not in the backup, the tenant's rows there "
                            "are deleted")
        if result.renamed_to is not None:
            rename_tenant(conn, scope, stages, result.renamed_to)
        if result.new_ids or into_live is not None:
            # into another tenant's id: every row under a fresh id, the tenant under that one
            remapped = remap_ids(conn, scope, stages, tenant,
                                 into_live.id if into_live is not None else None)
            if result.new_ids:
                result.new_tenant_id = remapped
                settle_slug(conn, scope, stages, result.renamed_to is not None, report)
            result.public_ids_regenerated = regenerate_public_ids(
                conn, stages, report, None if into_live is None
                else lambda name: scope.rows(name, into_live.id))
        analyze_stages(conn, stages)
        replaced = None if result.new_ids else into_live or tenant
        # Without foreign-key triggers nothing cascades from a deleted row to the rows left
        # in place, so rows identical to the backup's are left alone: only what changed is
        # written (with triggers, deleting a changed parent would run its ON DELETE actions
        # on its unchanged children). Rows under fresh ids are never identical.
        keep = replaced is not None and result.fk_mode == REPLICA and into_live is None
        if options.dry_run:
            _dry_run(conn, scope, stages, replaced, keep, result, report)
            return
        gone = None
        if replaced is not None:
            report.line(f"🔒 Locking tenant {replaced}'s rows...")
            lock_tenant(conn, scope, replaced)
            # named as it is here (with --into-tenant, another name than the file's)
            live = scope.by_id(conn, replaced.id)
            if options.safety_backup and live is not None:
                safety = write_safety_backup(conn, settings, archive, report, live)
                result.safety_backup = str(safety)
            if result.fk_mode == DEFERRED:
                refuse_outside_references(conn, scope, replaced)
            else:
                gone = Gone(conn, scope)
        report.line("⚙️  Disabling foreign key checks...")
        _foreign_keys_off(conn, result.fk_mode)
        if replaced is not None:
            result.deleted = delete_rows(conn, scope, replaced, gone=gone, stages=stages,
                                         keep_identical=keep)
            report.line(f"🗑️  Deleted tenant {replaced}'s rows"
                        f"{' that differ from the backup' if keep else ''}: "
                        f"{sum(result.deleted.values())}")
        result.sequences_reset = advance_sequences(conn, scope.tables,
                                                   lambda name: stages[name].ident)
        _load(conn, scope, stages, replaced, keep, tenant, result, report)
        if gone is not None:  # (set only when a tenant is replaced)
            refuse_dangling(conn, scope, replaced, gone)
        report.line("⚙️  Re-enabling foreign key checks...")
        if result.fk_mode == REPLICA:
            conn.execute("SET LOCAL session_replication_role = DEFAULT")
        result.foreign_keys_checked = validate_staged_references(
            conn, scope.tables, lambda name: stages[name].ident)
        if result.fk_mode == DEFERRED:
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        report.line(f"🔗 Foreign keys verified: {result.foreign_keys_checked}; "
                    f"sequences moved: {result.sequences_reset}")
        committing = True
        conn.commit()
    except BaseException as exc:
        with contextlib.suppress(psycopg.Error):  # a dead connection: the server rolled back
            conn.rollback()
        if safety is not None and not committing:
            with contextlib.suppress(OpsError, OSError):
                safety.delete()  # the rows it holds are still in the database
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            raise busy_error(result.tenant or ref, "restore failed") from None
        if isinstance(exc, psycopg.Error):
            raise database_error(exc, committing) from None
        raise


def _foreign_keys_off(conn: psycopg.Connection, fk_mode: str) -> None:
    if fk_mode == REPLICA:
        conn.execute("SET LOCAL session_replication_role = replica")
    else:
        conn.execute("SET CONSTRAINTS ALL DEFERRED")


def _load(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
          replaced: Tenant | None, keep: bool, tenant: Tenant, result: TenantRestoreResult,
          report: Reporter) -> None:
    """INSERT the staged rows, parents first (`keep`: those not left in place). A key taken by
    a row outside the tenant is one error listing the first few such rows (found after
    undoing the inserts)."""
    conn.execute("SAVEPOINT tenant_load")
    try:
        for name, stage in stages.items():
            result.inserted[name] = 0
            if stage.rows:
                result.inserted[name] = conn.execute(sql.SQL(
                    "INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} "
                    "FROM {stage} s{unless}").format(
                    table=stage.table.ident, stage=stage.ident,
                    columns=sql.SQL(", ").join(map(sql.Identifier, stage.columns)),
                    unless=_unless_left(scope, stage, replaced) if keep else sql.SQL(""))
                ).rowcount
            result.tables[name] = stage.rows
            report.line(f"✅ {name}: {stage.rows} rows ({result.deleted.get(name, 0)} "
                        f"deleted, {result.inserted[name]} inserted)")
    except psycopg.errors.UniqueViolation as exc:
        conn.execute("ROLLBACK TO SAVEPOINT tenant_load")
        found = find_collisions(conn, scope, stages, replaced)
        if not found:
            raise OpsError(f"restore failed, nothing was changed: {first_line(exc)}") from None
        raise collision_error(found, tenant, scope, result.new_ids) from None
    conn.execute("RELEASE SAVEPOINT tenant_load")


def _unless_left(scope: TenantScope, stage: Stage, replaced: Tenant | None) -> sql.Composable:
    """` WHERE` no row of the tenant with the staged row's key was left in place (after
    `delete_rows(keep_identical=True)` the rows left are exactly the identical ones)."""
    same = same_row(stage, whole=False)
    if same is None or replaced is None:
        return sql.SQL("")
    return sql.SQL(" WHERE NOT EXISTS (SELECT FROM {} x WHERE {} AND {})").format(
        stage.table.ident, scope.rows(stage.table.name, replaced.id), same)


def _dry_run(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
             replaced: Tenant | None, keep: bool, result: TenantRestoreResult,
             report: Reporter) -> None:
    """Counts to delete and to load, and the collisions a real run would stop at."""
    tenant = result.tenant
    assert tenant is not None
    found = find_collisions(conn, scope, stages, replaced)
    if found:
        raise collision_error(found, tenant, scope, result.new_ids)
    result.tables = {name: stage.rows for name, stage in stages.items()}
    result.inserted = dict(result.tables)
    if replaced is not None:
        result.deleted = count_rows(conn, scope, replaced, stages if keep else None)
        if keep:
            result.inserted = count_loads(conn, scope, replaced, stages)
    conn.rollback()
    report.line(f"🔍 Dry run: restoring tenant {_loaded_as(result)} would delete and load:")
    _count_table(report, scope.tables, {"delete": result.deleted, "load": result.inserted})
    report.line("Nothing was changed.")


def _count_table(report: Reporter, tables: list[Table], columns: dict[str, dict[str, int]]
                 ) -> None:
    width = max(len(t.name) for t in [*tables, Table("total", (), ())])
    report.line(f"   {'table':<{width}}" + "".join(f"  {name:>10}" for name in columns))
    for table in tables:
        report.line(f"   {table.name:<{width}}" + "".join(
            f"  {counts.get(table.name, 0):>10}" for counts in columns.values()))
    report.line(f"   {'total':<{width}}" + "".join(
        f"  {sum(counts.values()):>10}" for counts in columns.values()))


# ---------------------------------------------------------------- reset --tenant


@dataclass
class TenantResetResult:
    tenant: Tenant
    tables: dict[str, int] = field(default_factory=dict)  # rows deleted (or, dry run, held)
    total_rows: int = 0
    kept_tenant: bool = False
    dry_run: bool = False


def reset_tenant(settings: Settings, tenant: str, *, confirm: bool = False,
                 keep_tenant: bool = False, dry_run: bool = False,
                 allow_production: bool = False, report: Reporter = SILENT) -> TenantResetResult:
    """Delete every row of one tenant (its tenants row too, unless `keep_tenant`), atomically."""
    with connect(settings) as conn:
        if not confirm and not dry_run:
            raise unconfirmed(conn, settings,
                              f"reset --tenant deletes every row of tenant {tenant!r}",
                              allow_production=allow_production)
        tables = discover_tables(conn)
        require_schema(tables)
        scope = tenant_scope(tables)
        found = scope.find(conn, tenant)
        result = TenantResetResult(found, kept_tenant=keep_tenant, dry_run=dry_run)
        if dry_run:
            result.tables = count_rows(conn, scope, found)
            if keep_tenant:
                result.tables[scope.root.name] = 0
            result.total_rows = sum(result.tables.values())
            conn.rollback()
            report.line(f"🔍 Dry run: reset of tenant {found} would delete "
                        f"{result.total_rows} rows:")
            _count_table(report, scope.tables, {"delete": result.tables})
            report.line("Nothing was changed.")
            return result
        refuse_production(conn, settings, action="reset a tenant of",
                          allow_production=allow_production)
        fk_mode = REPLICA if is_superuser(conn) else DEFERRED
        conn.commit()
        report.line(f"🔄 Starting reset of tenant {found}...")
        report.line(f"⚠️  WARNING: This will DELETE every row of tenant {found}!")
        try:
            begin(conn)
            lock_tenant(conn, scope, found)
            gone = None
            if fk_mode == DEFERRED:
                refuse_outside_references(conn, scope, found, keep_root=keep_tenant)
            else:
                gone = Gone(conn, scope)
            _foreign_keys_off(conn, fk_mode)
            report.line("🗑️  Deleting its rows...")
            result.tables = delete_rows(conn, scope, found, keep_root=keep_tenant, gone=gone)
            if gone is not None:
                refuse_dangling(conn, scope, found, gone)
            for name, rows in result.tables.items():
                report.line(f"✅ {name}: {rows} rows deleted")
            conn.commit()
        except BaseException as exc:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise busy_error(found, "reset failed") from None
            if isinstance(exc, psycopg.Error):
                raise OpsError(f"reset failed, nothing was changed: {first_line(exc)}") from None
            raise
    result.total_rows = sum(result.tables.values())
    kept = " (the tenant row kept)" if keep_tenant else ""
    report.line(f"✅ Tenant reset completed: {found}, {result.total_rows} rows deleted{kept}")
    report.line(f"💡 To bring it back: {suggest(f'restore latest --tenant {found.id}')}")
    return result


# ---------------------------------------------------------------- copy --tenant


@dataclass
class CopyResult:
    tenant: Tenant  # in the source database
    target: str  # the target database's URL, password masked
    copied_as: Tenant | None = None
    tables: dict[str, int] = field(default_factory=dict)
    total_rows: int = 0
    public_ids_regenerated: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    seconds: float = 0.0


def copy_tenant(settings: Settings, tenant: str, to_url: str, *, rename: str | None = None,
                allow_production: bool = False, dry_run: bool = False,
                report: Reporter = SILENT) -> CopyResult:
    """Copy one tenant from the database of `settings` into the one at `to_url`, every id
    fresh from the target's sequences (public ids kept unless taken there).

    Through a tenant backup in a private local temporary directory (removed at the end),
    restored with new ids: the source is only read. The target's production guard is its
    environment marker: APP_ENV describes DATABASE_URL, the source.
    """
    from pyrage import x25519

    from ops.backup.create import backup

    started = time.monotonic()
    target = replace(settings, database_url=to_url, app_env="development", app_env_set=False)
    # by what the servers say, not the URLs' text: another host alias, a pooler in front
    # reach the same database, whose guard (APP_ENV) the target's settings would drop
    here = identity_of(settings)
    if here.same_database(identity_of(target)):
        raise Refused(f"--to {mask_url(to_url)} reaches this same database (the server "
                      f"identifies both as {here.database}, oid {here.database_oid}); copy "
                      "writes into another database; nothing was changed",
                      hint="To add a copy of the tenant here, restore its backup with "
                      "--new-ids --rename NEW.")
    report.line(f"🔄 Copying tenant {tenant} to {mask_url(to_url)}...")
    # Through a private scratch directory (never the backup store), age-encrypted to a key
    # that exists only in this process's memory: the rows never reach the disk readable, even
    # if the process is killed before it removes the file.
    key = x25519.Identity.generate()
    with scratch_dir() as work:
        made = backup(settings, output=work / "tenant.json.age", tenant=tenant,
                      encrypt_to=str(key.to_public()))
        assert made.tenant is not None
        report.line(f"📤 Read tenant {made.tenant}: {made.total_rows} rows")
        restored = restore_tenant(target, made.ref, str(made.tenant.id), identity=[key],
                                  new_ids=True, rename=rename, safety_backup=False,
                                  allow_production=allow_production, dry_run=dry_run,
                                  action="copy a tenant into", report=report)
    return CopyResult(made.tenant, mask_url(to_url), _loaded_as(restored), restored.tables,
                      restored.total_rows, restored.public_ids_regenerated, dry_run,
                      round(time.monotonic() - started, 3))
