"""`restore`: replace the database's data with a backup's, in ONE transaction.

Inside that transaction: lock every app table, write a safety backup of exactly the data
about to be replaced, switch foreign-key checks off (superuser: session_replication_role =
replica) or defer them (table owner: every FK is DEFERRABLE), clear, set the emptied
tables' indexes and keys aside (ops.core.indexes), COPY every table from the file as it
streams by, rebuild the indexes and keys (re-adding a foreign key validates it; any other
is validated with an anti-join), move every identity/serial sequence past the restored
ids, then commit. Any failure before the commit - bad row, wrong type, duplicate key, dangling
reference, kill -9, lost connection - rolls back and leaves the data exactly as it was.

A backup made at an older schema revision is restored into that revision's schema, rebuilt
from the migrations, and migrated to head in the same transaction (ops.restore.migrating).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ops.backup.archive import ANONYMIZED, Archive
from ops.backup.create import write_backup
from ops.backup.encryption import Identity, identities_for, recipients_for
from ops.backup.files import BackupRef, utc_now
from ops.backup.format import column_keys, describe_partial, describe_tenant
from ops.backup.integrity import read_sidecar
from ops.backup.reader import BackupReader, Section, table_names
from ops.backup.verdicts import BAD
from ops.core.catalog import (
    Table,
    current_revision,
    discover_tables,
    lock_tables,
    require_schema,
    truncate_statement,
)
from ops.core.config import Settings
from ops.core.db import connect, first_line, is_superuser, scalar
from ops.core.defaults import DEFAULT_COMPRESSION
from ops.core.errors import BadBackup, OpsError, Refused, UsageError
from ops.core.guard import refuse_production
from ops.core.indexes import SetAside, rebuild, set_aside
from ops.core.output import SILENT, Reporter, suggest, suggest_flag
from ops.core.tenancy import Tenant
from ops.restore.checks import dangling_explainer, reset_sequences, validate_foreign_keys
from ops.restore.fetched import fetched
from ops.restore.migrating import SchemaSwap, older_revision_swap
from ops.restore.plan import TablePlan, plan_table, row_label

REPLICA = "replica"  # superuser: FK triggers off during the load, validated explicitly after
DEFERRED = "deferred"  # table owner: FK checks deferred to the end of the transaction
PROGRESS_EVERY = 5000  # rows between progress-bar updates (per-row updates cost too much)


@dataclass
class RestoreResult:
    source: str  # where the backup was read from: a path or an object URL
    dry_run: bool = False
    timestamp: str | None = None
    layout: str = ""  # "lines" (one row per line, ours) or "streaming" (any other JSON)
    backup_revision: str | None = None
    database_revision: str | None = None
    migrated_from: str | None = None  # an older backup: restored at this revision...
    migrated_to: str | None = None  # ...then migrated to this one (head)
    fk_mode: str = ""
    safety_backup: str | None = None  # where the safety backup went
    tables: dict[str, int] = field(default_factory=dict)  # rows restored, in file order
    emptied: list[str] = field(default_factory=list)  # not in the file: emptied (full restore)
    untouched: list[str] = field(default_factory=list)  # not in the file: --only-listed-tables
    skipped_tables: list[str] = field(default_factory=list)  # in the file, not in the database
    dropped_columns: list[str] = field(default_factory=list)  # "table.field" not loaded
    defaulted_columns: list[str] = field(default_factory=list)  # "table.column" left default
    sequences_reset: int = 0
    foreign_keys_checked: int = 0
    indexes_rebuilt: int = 0  # indexes and keys set aside for the load, then rebuilt
    checksums_verified: bool = False
    total_rows: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# restore --at's replay: (conn, tables) for a whole restore; (conn, scope, stages, tenant id)
# for a tenant's, which replays into its stages.
Replay = Callable[..., None]


@dataclass
class Options:
    safety_backup: bool = True
    allow_production: bool = False
    allow_schema_mismatch: bool = False
    only_listed_tables: bool = False
    dry_run: bool = False
    allow_anonymized: bool = False
    # restore --at: applies change segments after the load, in the same transaction
    replay: Replay | None = None


def restore(settings: Settings, source: str | Path | BackupRef | None = "latest", *,
            archive: Archive | None = None, identity: Identity = None,
            safety_backup: bool = True, allow_production: bool = False,
            allow_schema_mismatch: bool = False, only_listed_tables: bool = False,
            allow_anonymized: bool = False,
            dry_run: bool = False, report: Reporter = SILENT,
            replay: Replay | None = None) -> RestoreResult:
    """Restore `source` (latest: the newest full backup, a verified one when there is one; a
    name in the archive, a path, an object URL, or a BackupRef) into the database; `identity`
    (default BACKUP_IDENTITY_FILE) decrypts an encrypted backup. An anonymized snapshot is
    restored in full only with `allow_anonymized`. A backup found bad on the way gets its
    `.bad` verdict. `replay` (restore --at) is called with the connection and the tables
    once the backup is loaded and its keys rebuilt, before foreign keys are checked."""
    options = Options(safety_backup, allow_production, allow_schema_mismatch,
                      only_listed_tables, dry_run, allow_anonymized, replay)
    started = time.monotonic()
    archive = archive or Archive.from_settings(settings)
    ref = source if isinstance(source, BackupRef) else archive.resolve(source)
    identities = identities_for(settings, identity)
    result = RestoreResult(source=str(ref), dry_run=dry_run)
    if source in (None, "", "latest") and not archive.verdicts().of(ref.name):
        note = (f"{ref.name} has not been verified (no verified backup to prefer); "
                f"{suggest('verify')} checks a backup first")
        result.notes.append(note)
        report.warn(f"⚠️  {note}")
    try:
        _refuse_anonymized(read_sidecar(ref), ref, options)
        _restore_ref(settings, ref, archive, identities, result, options, report)
    except BadBackup as exc:
        _record_bad(archive, ref, exc)
        raise
    result.total_rows = sum(result.tables.values())
    result.seconds = round(time.monotonic() - started, 3)
    if dry_run:
        report.line(f"🔍 Dry run: the file is valid; {result.total_rows} rows would be "
                    "restored. Nothing was changed.")
    else:
        report.line("✅ Database restore completed!")
        report.line(f"📊 Total rows restored: {result.total_rows}")
    return result


def _record_bad(archive: Archive, ref: BackupRef, exc: BadBackup) -> None:
    """What a restore found wrong with a backup of the archive, as its `.bad` verdict."""
    if ref.store is archive.store:
        with contextlib.suppress(OpsError):  # the failure itself is what must be reported
            archive.record_verdict(ref, BAD, problem=exc.detail, found_by="restore")


def _refuse_anonymized(facts: object, ref: BackupRef, options: Options) -> None:
    """An anonymized snapshot replaces every email and password: restored in full only when
    asked by name (`facts`: meta, or the sidecar's Integrity)."""
    kind = facts.get("anonymized") is True if isinstance(facts, dict) else \
        getattr(facts, "kind", None) == ANONYMIZED
    if kind and not options.allow_anonymized:
        raise Refused(f"{ref.name} is an anonymized snapshot: restoring it would replace every "
                      "email, name and password hash in the database; nothing was changed",
                      hint=f"If that is what you want: {suggest_flag('--allow-anonymized')} "
                      f"({suggest('fresh --from FILE')} makes a developer database from one).")


def _restore_ref(settings: Settings, ref: BackupRef, archive: Archive,
                 identities: list[Any], result: RestoreResult, options: Options,
                 report: Reporter) -> None:
    dry_run, only_listed_tables = options.dry_run, options.only_listed_tables
    with fetched(ref, report) as local, BackupReader(local, identities=identities) as reader, \
            connect(settings) as conn:
        # Announced once the file's start reads as a backup: nothing for a file that is none.
        report.line("🔄 Starting database restore...")
        report.line(f"📂 Reading backup: {ref}")
        result.timestamp = reader.timestamp
        result.layout = reader.layout
        report.line(f"📅 Backup timestamp: {reader.timestamp or 'unknown'}")
        tables = discover_tables(conn)
        require_schema(tables)
        result.database_revision = current_revision(conn)
        meta = reader.tail_meta
        swap = None
        if meta is not None:
            _refuse_anonymized(meta, ref, options)
            swap = _older_revision_swap(conn, settings, meta, tables, result, options, report)
            check_revision(meta, result, options, report)
            _warn_if_partial(meta, result, options, report)
            _check_before_locking(meta, swap.tables if swap else tables, options)
        listed = None
        if only_listed_tables:
            in_meta = (meta or {}).get("tables")
            listed = in_meta if isinstance(in_meta, list) else table_names(local, identities)
        targets = [t for t in tables if listed is None or t.name in listed]
        report.line(f"📊 Tables to restore: {len(swap.tables if swap else targets)}")
        if dry_run:
            conn.rollback()
            _dry_run(reader, swap.tables if swap else tables, result, options, report)
            if options.replay is not None:
                options.replay(conn, swap.tables if swap else tables)
        else:
            refuse_production(conn, settings, action="restore into",
                              allow_production=options.allow_production)
            result.fk_mode = REPLICA if is_superuser(conn) else DEFERRED
            conn.commit()
            _restore(conn, settings, archive, reader, tables, targets, result, options, report,
                     swap)


def check_revision(meta: dict[str, Any] | None, result: RestoreResult, options: Options,
                   report: Reporter) -> None:
    """Refuse (or, when allowed, note) a backup made at another schema revision."""
    revision = meta.get("alembicRevision") if meta else None
    result.backup_revision = revision
    database = result.database_revision
    if revision is None:
        note = ("the backup records no schema revision (seed-format file): restoring by "
                "column names")
    elif revision in (database, result.migrated_from):
        return
    elif not options.allow_schema_mismatch:
        raise OpsError(
            f"schema mismatch: the backup was made at revision {revision}, the database is at "
            f"{database or 'no revision'}; nothing was changed",
            hint=f"Run {suggest('push')} when the backup is newer (an older one is migrated "
            "up by itself), or load the columns both have: "
            f"{suggest_flag('--allow-schema-mismatch')}.",
        )
    else:
        note = (f"schema mismatch allowed: backup at {revision}, database at "
                f"{database or 'no revision'}; loading the columns both have")
    if note not in result.notes:  # checked twice: from the file's tail, and at its end
        result.notes.append(note)
        report.line(f"ℹ️  {note.capitalize()}")


def _older_revision_swap(conn: psycopg.Connection, settings: Settings, meta: dict[str, Any],
                         tables: list[Table], result: RestoreResult, options: Options,
                         report: Reporter) -> SchemaSwap | None:
    swap = older_revision_swap(
        conn, settings, meta.get("alembicRevision"), result.database_revision, tables,
        allow_schema_mismatch=options.allow_schema_mismatch,
        only_listed_tables=options.only_listed_tables, dry_run=options.dry_run, report=report)
    if swap is not None:
        result.migrated_from, result.migrated_to = swap.source, swap.target
    return swap


def _warn_if_partial(meta: dict[str, Any], result: RestoreResult, options: Options,
                     report: Reporter) -> None:
    """Say loudly that a --tables backup is being restored (latest may well be one)."""
    holds = describe_partial(meta)
    if holds is None:
        return
    fate = "left untouched" if options.only_listed_tables else "EMPTIED"
    note = (f"this is a PARTIAL backup ({holds}): tables it lacks will be {fate}")
    result.notes.append(note)
    report.warn(f"⚠️  {note.upper() if fate == 'EMPTIED' else note}")


# ---------------------------------------------------------------- the real thing


def _restore(conn: psycopg.Connection, settings: Settings, archive: Archive,
             reader: BackupReader, tables: list[Table], targets: list[Table],
             result: RestoreResult, options: Options, report: Reporter,
             swap: SchemaSwap | None = None) -> None:
    safety: BackupRef | None = None
    committing = False
    try:
        _lock(conn, tables)
        if options.safety_backup:
            safety = write_safety_backup(conn, settings, archive, report)
            result.safety_backup = str(safety)
        if swap is not None:
            tables = targets = swap.rebuild(conn, tables, report)
        by_name = {t.name: t for t in tables}
        report.line("⚙️  Disabling foreign key checks...")
        if result.fk_mode == REPLICA:
            conn.execute("SET LOCAL session_replication_role = replica")
        else:
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
        report.line("🗑️  Clearing existing data...")
        frozen = _clear(conn, tables, targets, result)
        aside = _set_aside(conn, targets, result, report) if frozen else None
        loaded: list[Table] = []
        for section in reader.sections():
            table = by_name.get(section.name)
            if table is None:
                skip_unknown_table(section, result, options, report)
                continue
            count = _load_table(conn, table, section, result, options, report,
                                freeze=frozen)
            result.tables[table.name] = count
            loaded.append(table)
            report.line(f"✅ {table.name}: {count} rows")
        result.checksums_verified = reader.verify_meta()
        check_revision(reader.meta, result, options, report)
        _refuse_anonymized(reader.meta, reader.ref, options)  # an encrypted one: known now
        _report_absent(tables, result, options, report)
        report.line("⚙️  Re-enabling foreign key checks...")
        if result.fk_mode == REPLICA:
            conn.execute("SET LOCAL session_replication_role = DEFAULT")
        rebuilt: set[str] = set()
        if aside is not None:
            rebuild(conn, aside, dangling_explainer(conn, tables))
            rebuilt = {d.name for d in aside.foreign_keys}
            result.indexes_rebuilt = len(aside.definitions) - len(rebuilt)
            report.line(f"🏗️  Rebuilt {result.indexes_rebuilt} indexes and keys; "
                        f"{len(rebuilt)} foreign keys re-added and validated")
        if options.replay is not None:
            report.line("🔁 Applying the changes after the backup...")
            if result.fk_mode == REPLICA:
                # as logical replication applies them: the changes already hold what the
                # ON DELETE actions and triggers did where they ran (and not what they did
                # not do, under a tenant restore's replica role); the keys are checked after
                conn.execute("SET LOCAL session_replication_role = replica")
                rebuilt = set()
            options.replay(conn, tables)
            if result.fk_mode == REPLICA:
                conn.execute("SET LOCAL session_replication_role = DEFAULT")
        changed = {t.name for t in targets}
        result.foreign_keys_checked = len(rebuilt) + validate_foreign_keys(
            conn, tables, changed, skip=rebuilt)
        if result.fk_mode == DEFERRED:
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if swap is not None:
            loaded = swap.migrate(conn, report)
        result.sequences_reset = reset_sequences(conn, loaded)
        report.line(f"🔗 Foreign keys verified: {result.foreign_keys_checked}; "
                    f"sequences reset: {result.sequences_reset}")
        committing = True
        conn.commit()
    except BaseException as exc:
        _rollback(conn)
        if safety is not None and not committing:
            with contextlib.suppress(OpsError):  # the data it holds is still in the database
                safety.delete()
        if isinstance(exc, psycopg.Error):
            raise database_error(exc, committing) from None
        raise


def _lock(conn: psycopg.Connection, tables: list[Table]) -> None:
    """Every app table, exclusively: nobody changes data between safety backup and commit."""
    lock_tables(conn, tables, "ACCESS EXCLUSIVE", what="restore failed")
    conn.execute("SET LOCAL statement_timeout = 0")


def write_safety_backup(conn: psycopg.Connection, settings: Settings, archive: Archive,
                        report: Reporter, tenant: Tenant | None = None) -> BackupRef:
    """A pre-restore backup of the data about to be replaced (of `tenant`'s rows only, locked
    FOR UPDATE as they are read, for a tenant restore), in the caller's transaction, in the
    archive. Encrypted like any other backup when BACKUP_ENCRYPT_TO is set: it holds the
    same personal data."""
    recipients = recipients_for(settings)
    target = archive.new_ref(utc_now(), compression=DEFAULT_COMPRESSION,
                             encrypted=bool(recipients), safety=True)
    written = write_backup(conn, target, compression=DEFAULT_COMPRESSION,
                           recipients=recipients, default_name=True, tenant=tenant,
                           lock_rows=tenant is not None)
    what = f"tenant {tenant}'s current rows" if tenant else "the current data"
    report.line(f"💾 Safety backup of {what}: {written.location} ({written.total_rows} rows)")
    return written.ref


def _clear(conn: psycopg.Connection, tables: list[Table], targets: list[Table],
           result: RestoreResult) -> bool:
    """Empty the tables the restore replaces, never touching any other table's rows.

    TRUNCATE when no other table references them; otherwise DELETE - which in replica mode
    fires no ON DELETE actions, and in deferred mode is refused when it would cascade into a
    table the file leaves untouched. Returns whether it truncated (COPY may then FREEZE).
    """
    names = {t.name for t in targets}
    outside = [(t, fk) for t in tables if t.name not in names
               for fk in t.foreign_keys if fk.ref_table in names]
    if not outside:
        conn.execute(truncate_statement(targets))
        return True
    if result.fk_mode == DEFERRED:
        for table, fk in outside:
            if scalar(conn, sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table.ident)):
                raise OpsError(
                    f"--only-listed-tables: clearing {fk.ref_table} would cascade into "
                    f"{table.name}, which the backup does not contain; nothing was changed",
                    hint="Restore with a file that also holds that table, or run as a "
                    "superuser (foreign-key actions are then switched off during the load).")
    for table in reversed(targets):
        conn.execute(sql.SQL("DELETE FROM {}").format(table.ident))
    return False


def _set_aside(conn: psycopg.Connection, targets: list[Table], result: RestoreResult,
               report: Reporter) -> SetAside | None:
    """Drop the emptied tables' indexes and keys for the load (see ops.core.indexes)."""
    aside = set_aside(conn, [t.name for t in targets])
    if aside.kept_because:
        result.notes.append(f"indexes kept during the load ({aside.kept_because})")
        report.line(f"ℹ️  Indexes kept during the load: {aside.kept_because}")
        return None
    report.line(f"🏗️  {len(aside.definitions)} indexes and keys set aside, rebuilt after the "
                "load")
    return aside


def _check_before_locking(meta: dict[str, Any], tables: list[Table], options: Options) -> None:
    """Refuse, before any table is locked, what meta already shows cannot be restored: a
    backup of one tenant (a full restore would empty every other tenant), tables and columns
    the database lacks (the rows would be refused one by one later)."""
    tenant = describe_tenant(meta)
    if tenant is not None:
        alone = suggest(f"restore FILE --tenant {meta['tenant'].get('id')}")
        raise UsageError(
            f"this is a backup of one tenant, {tenant}: restoring it in full would empty "
            "every other tenant; nothing was changed",
            hint=f"Restore that tenant alone ({alone}), or pick a full backup.")
    if options.allow_schema_mismatch:
        return
    by_name = {t.name: t for t in tables}
    in_meta = meta.get("columns")
    columns = in_meta if isinstance(in_meta, dict) else {}
    for name in meta.get("tables") or []:
        table = by_name.get(name)
        if table is None:
            raise _unknown_table_error(str(name))
        listed = columns.get(name)
        if isinstance(listed, list) and all(isinstance(c, str) for c in listed):
            plan_table(table, dict.fromkeys(column_keys(listed).values()), line_no=None,
                       allow_schema_mismatch=False)


def _unknown_table_error(name: str) -> OpsError:
    return OpsError(
        f"unknown table {name!r} in the backup: the database has no such table; "
        "nothing was changed",
        hint="Restore into a database at the backup's schema revision, or pass "
        "--allow-schema-mismatch to skip tables the database does not have.")


def skip_unknown_table(section: Section, result: RestoreResult, options: Options,
                       report: Reporter) -> None:
    if not options.allow_schema_mismatch:
        raise _unknown_table_error(section.name)
    section.drain()
    result.skipped_tables.append(section.name)
    report.line(f"⏭️  {section.name}: not in the database, skipped ({section.count} rows)")


def _load_table(conn: psycopg.Connection, table: Table, section: Section,
                result: RestoreResult, options: Options, report: Reporter, *,
                freeze: bool) -> int:
    """COPY one table's rows from the file; errors name the table, row and file line.

    After a TRUNCATE in this transaction, COPY FREEZE writes the rows already frozen: no
    hint-bit rewrite of every page on first read (the FK validation right after, then
    VACUUM), as pg_restore's data loads would need.
    """
    rows = section.rows
    first = next(rows, None)
    if first is None:
        return 0
    row_no, line_no, value = first
    plan = plan_table(table, value, line_no=line_no,
                      allow_schema_mismatch=options.allow_schema_mismatch,
                      json_text=section.json_text)
    note_columns(plan, result, report)
    statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        table.ident, sql.SQL(", ").join(sql.Identifier(c) for c in plan.columns),
        sql.SQL(" (FREEZE)") if freeze else sql.SQL(""))
    values = plan.values
    exact = section.exact if section.approximate else None
    try:
        with report.progress(f"📥 {table.name}", None) as advance, \
                conn.cursor().copy(statement) as copy:
            write_row = copy.write_row
            write_row(values(value, row_no, line_no, exact))
            for row_no, line_no, value in rows:
                write_row(values(value, row_no, line_no, exact))
                if not row_no % PROGRESS_EVERY:
                    advance(PROGRESS_EVERY)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        raise copy_error(exc, plan, section, row_no, line_no) from None
    return section.count


def note_columns(plan: TablePlan, result: RestoreResult, report: Reporter) -> None:
    name = plan.table.name
    for key in plan.dropped:
        result.dropped_columns.append(f"{name}.{key}")
        report.line(f"⚠️  {name}.{key}: not in the database, dropped")
    for column in plan.defaulted:
        result.defaulted_columns.append(f"{name}.{column}")
        report.line(f"⚠️  {name}.{column}: not in the backup, left to its default")


_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")


def copy_error(exc: psycopg.Error, plan: TablePlan, section: Section, row_no: int,
               line_no: int | None, line_of: Callable[[int], int | None] | None = None
               ) -> OpsError:
    """A COPY failure as one line naming the row: the server's CONTEXT knows which.

    `line_of` maps the n-th row sent to its file line when not every row of the section was
    sent (a tenant's rows only)."""
    diag = exc.diag
    column = None
    if diag.sqlstate:  # from the server: its line number is the row number in this table
        match = _COPY_CONTEXT.search(diag.context or "")
        if match:
            row_no = int(match[1])
            column = match[2]
            if line_of is not None:
                line_no = line_of(row_no)
            else:
                line_no = section.first_line + row_no - 1 if section.first_line else None
        message = diag.message_primary or first_line(exc)
    else:  # psycopg could not adapt a value (an object where a scalar belongs)
        message = f"a value has the wrong type ({first_line(exc)})"
    where = row_label(plan.table.name, row_no, line_no)
    if column:
        where += f", column {column}"
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return OpsError(f"{where}: {message}{detail}; nothing was changed",
                    hint="Fix or remove that row in the backup, or restore another backup.")


def _report_absent(tables: list[Table], result: RestoreResult, options: Options,
                   report: Reporter) -> None:
    for table in tables:
        if table.name in result.tables:
            continue
        if options.only_listed_tables:
            result.untouched.append(table.name)
            report.line(f"⏭️  {table.name}: not in the backup, left untouched")
        else:
            result.emptied.append(table.name)
            report.line(f"➖ {table.name}: not in the backup, emptied")


def _rollback(conn: psycopg.Connection) -> None:
    with contextlib.suppress(psycopg.Error):  # a dead connection: the server rolled back
        conn.rollback()


def database_error(exc: psycopg.Error, committing: bool) -> OpsError:
    if committing:
        return OpsError(f"the connection failed while committing the restore: {first_line(exc)}",
                        hint="The restore may or may not have been committed; check with "
                        f"{suggest('status')}. The safety backup was kept.")
    if isinstance(exc, psycopg.OperationalError):
        return OpsError(f"lost the database connection during the restore ({first_line(exc)}); "
                        "the server rolled the transaction back, nothing was changed",
                        hint="Check the server, then run the restore again.")
    return OpsError(f"restore failed, nothing was changed: {first_line(exc)}")


# ---------------------------------------------------------------- --dry-run


def _dry_run(reader: BackupReader, tables: list[Table], result: RestoreResult,
             options: Options, report: Reporter) -> None:
    """Read and check the whole file against the live schema; write nothing."""
    by_name = {t.name: t for t in tables}
    for section in reader.sections():
        table = by_name.get(section.name)
        if table is None:
            skip_unknown_table(section, result, options, report)
            continue
        first = next(section.rows, None)
        if first is not None:
            row_no, line_no, value = first
            plan = plan_table(table, value, line_no=line_no,
                              allow_schema_mismatch=options.allow_schema_mismatch,
                              json_text=section.json_text)
            note_columns(plan, result, report)
            plan.values(value, row_no, line_no)
            for row_no, line_no, value in section.rows:
                plan.values(value, row_no, line_no)
        result.tables[table.name] = section.count
        report.line(f"✅ {table.name}: {section.count} rows (would be restored)")
    result.checksums_verified = reader.verify_meta()
    check_revision(reader.meta, result, options, report)
    _report_absent(tables, result, options, report)
