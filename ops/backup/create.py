"""`backup`: one consistent snapshot of every app table, streamed to a JSON file in a store.

PostgreSQL does the serialising (`COPY (SELECT row_to_json(...)) TO STDOUT`, in binary
format so there is no text escaping to undo); we only frame, hash and write ~1 MB blocks,
so memory stays flat whatever the size. The writer (ops.backup.writer) compresses, encrypts
and hands the bytes to the store (a directory or a bucket) as they come.
The layout is the contract in `ops.backup.format`.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ops import __version__
from ops.anonymize.mask import Anonymizer, TableMask, anonymize_key
from ops.anonymize.policy import Policy
from ops.backup.archive import Archive, kind_of
from ops.backup.compression import from_name as compression_from_name
from ops.backup.encryption import recipients_for
from ops.backup.files import (
    BackupRef,
    Source,
    as_ref,
    iso_timestamp,
    next_backup_name,
    utc_now,
)
from ops.backup.format import (
    JSON_NULL_KEY,
    MAX_ROW_BYTES,
    TABLES_END,
    column_keys,
    header_line,
    meta_line,
    table_close_line,
    table_open_line,
)
from ops.backup.integrity import Integrity, sidecar_tenant, write_sidecar
from ops.backup.lock import backup_lock
from ops.backup.parallel import PartStreams, stream_parts
from ops.backup.storage.factory import open_object
from ops.backup.writer import BackupWriter
from ops.core.catalog import (
    Column,
    Table,
    TableStats,
    current_revision,
    discover_tables,
    require_schema,
    table_stats,
    unique_keys,
)
from ops.core.config import Settings
from ops.core.db import (
    SNAPSHOT_SETTINGS,
    connect,
    connection,
    database_identity,
    first_line,
    pin_settings,
    scalar,
    server_version,
)
from ops.core.errors import OpsError, UsageError
from ops.core.limits import summarize
from ops.core.output import SILENT, Reporter, human_size, no_progress
from ops.core.tenancy import Tenant, tenant_scope

TOOL_NAME = "tasklets-ops"
PARALLEL_MIN_BYTES = 64 << 20  # below this, extra connections cost more than they save
BLOCK_BYTES = 1 << 20  # bigger blocks measured slower, smaller ones cost Python overhead
PROGRESS_MIN_ROWS = 50_000



@dataclass
class BackupResult:
    ref: BackupRef  # the backup written
    location: str  # where it was written: a path, or a bucket URL
    name: str  # its name there
    path: Path | None  # the file, when in a local directory
    compressed: bool
    encrypted: bool
    compression: str | None = None  # "zstd" or "gzip" when compressed
    tables: dict[str, int] = field(default_factory=dict)  # name -> rows, in file order
    sha256: dict[str, str] = field(default_factory=dict)
    total_rows: int = 0
    size_bytes: int = 0
    timestamp: str = ""
    tenant: Tenant | None = None  # a backup of this tenant's rows only


def backup(settings: Settings, *, archive: Archive | None = None,
           output: str | Path | None = None,
           compression: str | None = None,
           encrypt_to: str | None = None, tables: list[str] | None = None,
           exclude: list[str] | None = None, tenant: str | None = None,
           jobs: int | None = None, anonymize: Policy | None = None,
           report: Reporter = SILENT, lock: bool = True) -> BackupResult:
    """Back up the database of `settings` from one REPEATABLE READ, READ ONLY snapshot.

    Into the archive (BACKUP_DIR's, unless given: a directory or a bucket), or `output` (a
    file or directory path, or an object URL), compressed with `compression` ("zstd",
    "gzip"; None: plain unless the output's name ends in .zst or .gz). `encrypt_to` (default
    BACKUP_ENCRYPT_TO) lists age recipients. With jobs > 1 a large database is read over
    that many connections sharing the snapshot (default BACKUP_JOBS, else what the store
    prefers: 2 into a directory, 1 into a bucket, where several streams need local spool
    files a bucket backup otherwise never needs).
    `tenant` (a name or an id) backs up that tenant's rows only, of every table. With
    `anonymize`, every row goes through that policy's transformers on its way to the file
    (keyed by ANONYMIZE_SALT); a schema the policy does not fully classify writes nothing.

    One backup of a database at a time: this one waits for a backup that is running (`lock`
    False: the caller holds the backup lock already, see ops.backup.lock).
    """
    if tenant is not None and (tables or exclude):
        raise UsageError("--tenant backs up one tenant's rows of every table; it does not "
                         "combine with --tables or --exclude-tables")
    archive = archive or Archive.from_settings(settings)
    with backup_lock(settings, report=report) if lock else nullcontext():
        return _backup(settings, archive, output=output, compression=compression,
                       encrypt_to=encrypt_to, tables=tables, exclude=exclude, tenant=tenant,
                       jobs=jobs, anonymize=anonymize, report=report)


def _backup(settings: Settings, archive: Archive, *, output: str | Path | None,
            compression: str | None,
            encrypt_to: str | None, tables: list[str] | None, exclude: list[str] | None,
            tenant: str | None, jobs: int | None, anonymize: Policy | None,
            report: Reporter) -> BackupResult:
    recipients = recipients_for(settings, encrypt_to)
    report.line("🔄 Starting database backup...")
    moment = utc_now()
    ref, compression, default_name = backup_target(archive, output, moment, compression,
                                                   encrypted=bool(recipients))
    jobs = jobs or settings.backup_jobs or ref.store.default_jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    with connection(settings, autocommit=True) as conn, \
            replay_start(conn, report) as capture:
        found = None
        if tenant is not None:  # looked up in the backup's own snapshot
            found = tenant_scope(discover_tables(conn)).find(conn, tenant)
            report.line(f"🏢 Tenant: {found} — only its rows are backed up")
        anonymizer = None
        if anonymize is not None:
            anonymizer = Anonymizer(anonymize, anonymize_key(settings, conn, report))
            report.line(f"🎭 Anonymizing with {anonymize.path.name} "
                        f"(sha256 {anonymize.sha256[:12]}…)")
        result = write_backup(conn, ref, compression=compression, recipients=recipients,
                              tables=tables, exclude=exclude, tenant=found, report=report,
                              moment=moment, jobs=jobs,
                              open_connection=lambda: connect(settings, autocommit=True),
                              default_name=default_name, anonymizer=anonymizer,
                              capture=capture)
    report.line("✅ Backup completed successfully!")
    report.line(f"📁 Backup file: {result.location}"
                + (" (encrypted)" if result.encrypted else ""))
    report.line(f"📊 Total tables backed up: {len(result.tables)}")
    report.line(f"💾 File size: {human_size(result.size_bytes)}")
    return result


def backup_target(archive: Archive, output: str | Path | None, moment: datetime,
                  compression: str | None, *, encrypted: bool = False
                  ) -> tuple[BackupRef, str | None, bool]:
    """(where to write, compression, default name?): BACKUP_DIR/backup-<ts>.json[.zst|.gz]
    [.age], or what --output says (a directory, a file, an object URL; a name ending in .zst
    or .gz picks that compression). A named backup is never overwritten."""
    if output is None or (not isinstance(output, str) or "://" not in output) \
            and Path(output).is_dir():
        into = archive if output is None else Archive.at(Path(output))
        return into.new_ref(moment, compression=compression, encrypted=encrypted), \
            compression, True
    store, name = open_object(output)
    if name.endswith(".age") != encrypted:
        raise UsageError(
            f"--output {name}: an encrypted backup's name ends in .age, a plain one's does not",
            hint="Name it ….json.age (or ….json.zst.age) with BACKUP_ENCRYPT_TO set, or drop "
            ".age.")
    ref = BackupRef(store, name)
    if ref.exists():
        raise OpsError(f"{ref} already exists; nothing was written",
                       hint="Choose another --output name, or remove that file first.")
    return ref, compression_from_name(name) or compression, False


def write_backup(conn: psycopg.Connection, target: Source, *, compression: str | None = None,
                 recipients: Sequence[Any] = (),
                 tables: list[str] | None = None, exclude: list[str] | None = None,
                 tenant: Tenant | None = None, lock_rows: bool = False,
                 report: Reporter = SILENT, moment: datetime | None = None, jobs: int = 1,
                 open_connection: Callable[[], psycopg.Connection] | None = None,
                 default_name: bool = False, anonymizer: Anonymizer | None = None,
                 capture: dict[str, Any] | None = None) -> BackupResult:
    """Stream the chosen tables, as `conn`'s current transaction sees them, into `target` (a
    backup in a store, or a local file).

    The caller owns the snapshot: `backup` opens REPEATABLE READ, READ ONLY; restore calls
    this inside its own transaction for the safety backup. Published only when complete and
    never over anything (a `default_name` that was taken meanwhile moves on to the next
    millisecond's name where the store allows); on any failure nothing is left and OpsError
    raised. `open_connection` (autocommit connections to the same database) enables `jobs`
    streams. `tenant` takes only that tenant's rows (meta records it); `lock_rows` locks
    them FOR UPDATE as they are read, so that a caller about to replace them (a tenant
    restore's safety backup) saves exactly what it replaces. `anonymizer` transforms every
    row on its way to the file. `capture` (from `replay_start`, which took the snapshot) is
    recorded in meta as where change replay starts.
    """
    moment = moment or utc_now()
    ref = as_ref(target)
    result = BackupResult(ref=ref, location=str(ref), name=ref.name, path=ref.path,
                          compressed=compression is not None, compression=compression,
                          encrypted=bool(recipients), timestamp=iso_timestamp(moment),
                          tenant=tenant)
    args = (result, ref, recipients, tables, exclude, lock_rows, report, jobs,
            open_connection, default_name, anonymizer, moment, capture)
    try:
        if _idle_autocommit(conn):  # one snapshot per statement would not be consistent
            with locked_snapshot(conn):
                return _write(conn, *args)
        return _write(conn, *args)
    except RecursionError:  # only the anonymizer parses values; the writer has discarded
        raise OpsError("a JSON value is nested too deeply for the anonymizer (jsonb hundreds "
                       "of levels deep); no backup file was written",
                       hint="A backup without --anonymize keeps it; or flatten that value."
                       ) from None


def _idle_autocommit(conn: psycopg.Connection) -> bool:
    return conn.autocommit and \
        conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@contextmanager
def locked_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """A REPEATABLE READ, READ ONLY transaction on an idle autocommit connection, whose
    snapshot is taken only after ACCESS SHARE locks on every app table.

    A table rewrite (ALTER ... TYPE, TRUNCATE, VACUUM FULL, CLUSTER) is not MVCC-safe: a
    snapshot taken before it commits sees the rewritten table as empty. REPEATABLE READ
    takes its snapshot at the transaction's first query, and LOCK TABLE is not one, so
    locking first makes a backup either wait for a rewrite or keep it waiting. The tables
    are found just before, in a transaction of their own; one created in between is locked
    later by `_write`, whose check then refuses any rewrite that slipped in.
    """
    names = [t.ident for t in discover_tables(conn)]  # autocommit: no snapshot kept
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            if names:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                    sql.SQL(", ").join(names)))
        except (psycopg.errors.UndefinedTable,  # dropped between finding and locking
                psycopg.errors.DeadlockDetected) as exc:  # a migration locking otherwise
            raise _schema_changed(first_line(exc)) from None
        yield


def _schema_changed(detail: str) -> OpsError:
    return OpsError(f"the schema changed while the backup started ({detail}); no backup file "
                    "was written", hint="Run the backup again once the migration or restore "
                    "that changes the schema has finished.")


def refuse_rewritten(conn: psycopg.Connection, tables: list[Table]) -> None:
    """OpsError when a table was rewritten (its file replaced) after this transaction's
    snapshot: the snapshot would read it as empty. Compares the file the snapshot's
    catalog names with the one the server uses now; call it with the tables locked."""
    rewritten = [row[0] for row in conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.oid = ANY(%s::regclass[]) "
        "AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid) ORDER BY 1",
        ([t.ident.as_string(conn) for t in tables],))]
    if rewritten:
        raise _schema_changed(f"table {summarize(rewritten)} was rewritten by ALTER TABLE or "
                              "TRUNCATE under the backup's snapshot")


def _write(conn: psycopg.Connection, result: BackupResult, ref: BackupRef,
           recipients: Sequence[Any], only: list[str] | None, exclude: list[str] | None,
           lock_rows: bool, report: Reporter, jobs: int,
           open_connection: Callable[[], psycopg.Connection] | None,
           default_name: bool, anonymizer: Anonymizer | None, moment: datetime,
           capture: dict[str, Any] | None) -> BackupResult:
    pin_settings(conn, SNAPSHOT_SETTINGS, local=True)
    discovered = discover_tables(conn)
    chosen = select_tables(discovered, only, exclude)
    sources = tenant_rows(discovered, result.tenant, lock=lock_rows) if result.tenant else {}
    masks: dict[str, TableMask] = {}
    if anonymizer is not None:  # checks the policy against the whole schema: before any file
        from ops.backup.leaks import refuse_leaks, sample_leaks  # it streams rows with ours

        masks = anonymizer.masks(chosen, discovered, unique_keys(conn),
                                 lambda t: column_keys(t.column_names))
        refuse_leaks(sample_leaks(conn, chosen, masks, anonymizer.fake_domains),
                     anonymizer.policy)
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(  # no DDL under our feet
        sql.SQL(", ").join(t.ident for t in chosen)))
    refuse_rewritten(conn, chosen)
    stats = table_stats(conn, chosen)
    meta = {
        "tool": TOOL_NAME,
        "toolVersion": __version__,
        "alembicRevision": current_revision(conn),
        "database": scalar(conn, "SELECT current_database()"),
        # which database, as the server says: a tenant restore tells its ids apart by it
        "source": database_identity(conn).as_meta(),
        "serverVersion": server_version(conn),
        "tables": [t.name for t in chosen],
        "columns": {t.name: t.column_names for t in chosen},
        "rowCounts": result.tables,
        "sha256": result.sha256,
        "totalRows": 0,
        "partial": {"tables": only or [], "excludeTables": exclude or []}
        if only or exclude else None,
        "compressed": result.compressed,
        "compression": result.compression,
        "jsonText": {t.name: keys for t in chosen if (keys := json_text_keys(t))},
        "tenant": result.tenant.as_meta() if result.tenant else None,
        **(anonymizer.meta if anonymizer is not None else {}),
        "capture": capture,
    }
    current = chosen[0].name
    parts: PartStreams | None = None
    next_name = next_backup_name if default_name else None
    try:
        with BackupWriter(ref, compression=result.compression, recipients=recipients,
                          next_name=next_name) as out:
            try:
                out.write(header_line(result.timestamp))
                if jobs > 1 and open_connection is not None:
                    parts = _start_streams(conn, chosen, stats, jobs, open_connection, out,
                                           sources, masks)
                for index, table in enumerate(chosen):
                    current = table.name
                    out.write(table_open_line(table.name))
                    if parts is not None and table.name in parts:
                        part = parts.part(table.name)
                        out.splice(part.path)
                        rows, digest = part.rows, part.sha256
                    else:
                        estimate = stats[table.name].rows_estimate
                        with _progress(report, table.name, estimate) as advance:
                            rows, digest = stream_table(conn, table, out.write, advance,
                                                         sources.get(table.name),
                                                         masks.get(table.name))
                    out.write(table_close_line(last=index == len(chosen) - 1))
                    result.tables[table.name] = rows
                    result.sha256[table.name] = digest
                    result.total_rows += rows
                    report.line(f"✅ {table.name}: {rows} rows")
            finally:
                if parts is not None:  # before the writer removes their files
                    parts.close()
            out.write(TABLES_END)
            meta["totalRows"] = result.total_rows
            meta["durationSeconds"] = round((utc_now() - moment).total_seconds(), 3)
            out.new_member()  # meta alone in the last frame: read_meta finds it cheaply
            out.write(meta_line(meta))
            result.size_bytes = out.commit()
            result.ref = out.ref
            result.location, result.name, result.path = str(out.ref), out.ref.name, out.ref.path
        write_sidecar(out.ref, Integrity(
            result.size_bytes, out.sha256, kind_of(out.ref.name, meta),
            sidecar_tenant(meta["tenant"], recipients), meta["alembicRevision"],
            result.total_rows, capture=meta["capture"]))
    except OSError as exc:
        raise OpsError(
            f"cannot write backup {result.location}: {exc.strerror or exc}",
            hint="Check free space and permissions of the backup directory "
            "(--compress makes the file about 7x smaller).",
        ) from None
    except psycopg.OperationalError as exc:
        raise OpsError(f"lost the database connection while backing up table {current}: "
                       f"{first_line(exc)}; no backup file was written") from None
    except psycopg.Error as exc:
        raise OpsError(f"backup failed while reading table {current}: {first_line(exc)}; "
                       "no backup file was written") from None
    return result


def _start_streams(conn: psycopg.Connection, chosen: list[Table],
                   stats: dict[str, TableStats], jobs: int,
                   open_connection: Callable[[], psycopg.Connection],
                   out: BackupWriter, sources: dict[str, sql.Composable],
                   masks: dict[str, TableMask]) -> PartStreams | None:
    """Stream every table over `jobs` connections sharing this transaction's snapshot (None:
    the database is too small for that to pay)."""
    sizes = {name: stat.bytes for name, stat in stats.items()}
    if sum(sizes.values()) < PARALLEL_MIN_BYTES:
        return None
    snapshot = scalar(conn, "SELECT pg_export_snapshot()")
    return stream_parts(open_connection, snapshot, chosen, sizes, jobs, out.part, out.compression,
                        lambda c, t, write: stream_table(c, t, write, no_progress,
                                                          sources.get(t.name),
                                                          masks.get(t.name)))


START_RETRIES = 3  # new snapshots taken while a transaction racing the first one commits
START_PAUSE = 0.005  # seconds between them: a commit leaves the ProcArray within microseconds
# The snapshot, a moment after it, and the transactions it misses whose commit is written
# already: those it misses (its xip, and xmax up to the next xid, which `age` reads) that
# committed since — pg_xact_status says "in progress" while a transaction is in the
# ProcArray — and those waiting for a synchronous standby, committed but in the ProcArray
# still. pg_stat_activity's xid is 32 bits: its 64-bit form is the one nearest xmax.
START_SQL = sql.SQL(
    "SELECT s::text, clock_timestamp(), ARRAY("
    " SELECT x FROM (SELECT pg_snapshot_xip(s) AS x UNION ALL"
    "  SELECT (m + g)::text::xid8 FROM generate_series(0, age(xid(pg_snapshot_xmax(s))) - 1)"
    "  AS g) AS missed WHERE pg_xact_status(x) = 'committed' UNION"
    " SELECT (m + ((backend_xid::text::bigint - m % 4294967296 + 6442450944) % 4294967296)"
    " - 2147483648)::text::xid8 FROM pg_stat_activity"
    " WHERE wait_event = 'SyncRep' AND backend_xid IS NOT NULL ORDER BY 1)::text[]"
    " FROM (SELECT pg_current_snapshot() AS s,"
    " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS m) AS now")
# Whether those waits are hidden from this role (other roles' sessions show no wait_event
# nor backend_xid without pg_read_all_stats) while commits may wait for a standby.
WAITS_UNSEEN_SQL = ("SELECT current_setting('synchronous_standby_names') <> '' AND NOT "
                    "pg_has_role('pg_read_all_stats', 'USAGE')")


@contextmanager
def replay_start(conn: psycopg.Connection,
                 report: Reporter = SILENT) -> Iterator[dict[str, Any] | None]:
    """The backup's snapshot (`locked_snapshot`) on an idle autocommit connection, and what
    change replay (restore --at) needs to apply exactly the transactions it does not hold:
    meta "capture" (None on a standby, which has no WAL of its own to replay from).

    walLsn is read first, in a transaction of its own: a transaction the snapshot misses
    commits after it, unless it was committing right then. A commit writes its WAL record,
    marks itself committed, waits for synchronous standbys (without bound), and only then
    becomes visible; a snapshot taken in between misses it although its commit record is
    before walLsn, where replay does not read. Such transactions are found at once (START_SQL:
    the same query takes the snapshot), and the start taken again (the snapshot is only
    ever this transaction's; the parallel streams and the tenant lookup come after). Those
    still committing after START_RETRIES (a stalled synchronous standby) are recorded as
    "committedInSnapshot", with "committedBy", a WAL position their commit records precede:
    replay then looks for them before walLsn too."""
    if scalar(conn, WAITS_UNSEEN_SQL):
        report.warn("⚠️  Synchronous standbys are configured and this role cannot see other "
                    "sessions' waits: a commit waiting for a standby as the backup starts "
                    "would be missed by restore --at. Grant pg_read_all_stats to this role.")
    identity = database_identity(conn)
    for attempt in range(START_RETRIES + 1):
        wal_lsn = scalar(conn, "SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
                         "ELSE pg_current_wal_lsn()::text END")
        with locked_snapshot(conn):
            if wal_lsn is None:
                yield None
                return
            snapshot, moment, racing = conn.execute(START_SQL).fetchall()[0]
            if racing and attempt < START_RETRIES:
                time.sleep(START_PAUSE)
                continue  # read-only: leaving the transaction only ends it
            capture: dict[str, Any] = {
                "snapshot": str(snapshot), "walLsn": str(wal_lsn),
                "snapshotTime": moment.astimezone(UTC).isoformat(timespec="microseconds"),
                # whose changes replay may apply: a segment says which database wrote it
                "systemIdentifier": identity.system_identifier, "database": identity.database}
            if racing:
                capture["committedInSnapshot"] = [int(x) for x in racing]
                capture["committedBy"] = str(scalar(conn, "SELECT pg_current_wal_lsn()"))
            yield capture
            return


def select_tables(discovered: list[Table], only: list[str] | None,
                  exclude: list[str] | None) -> list[Table]:
    """The tables to back up, in dependency order; unknown names are an error."""
    require_schema(discovered)
    known = {t.name for t in discovered}
    unknown = [n for n in [*(only or []), *(exclude or [])] if n not in known]
    if unknown:
        raise OpsError(f"unknown table(s): {summarize(unknown)}",
                       hint=f"Tables in this database: {summarize(sorted(known), 30)}")
    chosen = [t for t in discovered
              if (not only or t.name in only) and t.name not in (exclude or [])]
    if not chosen:
        raise OpsError("no tables left to back up after --tables/--exclude-tables")
    return chosen


def tenant_rows(tables: list[Table], tenant: Tenant, *, lock: bool = False
                ) -> dict[str, sql.Composable]:
    """Per table, the FROM item holding only the tenant's rows (`copy_query`'s `source`)."""
    scope = tenant_scope(tables)
    sources: dict[str, sql.Composable] = {}
    for table in tables:
        rows = sql.SQL("SELECT * FROM {} x WHERE {}").format(
            table.ident, scope.rows(table.name, tenant.id, "x"))
        if lock:
            rows = sql.SQL("{} FOR UPDATE").format(rows)
        sources[table.name] = sql.SQL("({}) x").format(rows)
    return sources


def copy_query(table: Table, source: sql.Composable | None = None,
               mask: TableMask | None = None) -> sql.Composed:
    """COPY of one JSON object per row, keys renamed, in primary-key order.

    `r.*` names the whole row even when a column is called `r`. Tables without a primary key
    are ordered by their JSON text, which is stable for unchanged data. BINARY format hands us
    the JSON text as is: no COPY text escaping to undo. A `json` column (unlike jsonb, it
    keeps its input text: spacing, key order, duplicate keys) is written as that text, in a
    JSON string, so a restore gives back the very same text. `source` (a FROM item with the
    table's columns) selects the rows; by default, all of them.

    With a `mask` (anonymizing), each row is two fields: the object of the columns it keeps
    (`k`, a LATERAL subselect of `r`, so the JSON-null marks still see every column) and a
    JSON array of its row key and the values it replaces (jsonb ones the mask rewrites by
    key as their text, so what it leaves alone goes out byte for byte), for the transform to
    append.
    """
    keys = column_keys(table.column_names)
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(_as_written(column), sql.Identifier(keys[column.name]))
        for column in table.columns)
    rows_from = sql.SQL("(SELECT {} FROM {}) r").format(select, source or table.ident)
    if mask is None:
        fields = sql.SQL("{} AS j").format(_row_json(table, keys))
    else:
        def ref(column: str) -> sql.Composable:
            return sql.SQL("r.{}").format(sql.Identifier(keys[column]))

        kept = sql.SQL(", ").join(sql.SQL("{} AS {}").format(ref(c.name), sql.Identifier(
            keys[c.name])) for c in table.columns if c.name not in mask.columns)
        rows_from = sql.SQL("{}, LATERAL (SELECT {}) k").format(rows_from, kept)
        fields = sql.SQL("{} AS j, json_build_array({})::text AS m").format(
            _row_json(table, keys, sql.SQL("row_to_json(k.*)")),
            sql.SQL(", ").join(sql.SQL("{}::text").format(ref(c)) if c in mask.as_text
                               else ref(c) for c in (*mask.row_key, *mask.columns)))
    rows = sql.SQL("SELECT {} FROM {}").format(fields, rows_from)
    if table.primary_key:
        order = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(keys[c]))
                                   for c in table.primary_key)
        query = sql.SQL("{} ORDER BY {}").format(rows, order)
    else:
        query = sql.SQL('SELECT {} FROM ({}) s ORDER BY j::text COLLATE "C"{}').format(
            sql.SQL("j, m" if mask is not None else "j"), rows,
            sql.SQL(', m COLLATE "C"' if mask is not None else ""))
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)


def json_text_keys(table: Table) -> list[str]:
    """The keys of `json` columns, whose values the file holds as exact text (meta jsonText)."""
    keys = column_keys(table.column_names)
    return [keys[c.name] for c in table.columns if c.json_type == "json"]


def _as_written(column: Column) -> sql.Composable:
    if column.json_type == "json":
        cast = "text[]" if column.is_array else "text"
        return sql.SQL("to_json({}::{})").format(sql.Identifier(column.name), sql.SQL(cast))
    return sql.Identifier(column.name)


def _row_json(table: Table, keys: dict[str, str],
              whole: sql.Composable | None = None) -> sql.Composable:
    """row_to_json of the row, plus the JSON_NULL_KEY field when a jsonb value is JSON null.

    row_to_json writes SQL NULL and JSON null alike as `null`; the extra field (rare, so it
    is appended to the text only for the rows that need it) names the columns - and for
    jsonb arrays the 1-based elements - that hold JSON null, so a restore brings back each.
    `whole` is the object to mark (default: all of `r`).
    """
    whole = whole or sql.SQL("row_to_json(r.*)")
    marks: list[tuple[str, sql.Composable, sql.Composable]] = []  # (key, condition, value)
    for column in table.columns:
        if column.json_type != "jsonb":
            continue
        key = keys[column.name]
        ref = sql.SQL("r.{}").format(sql.Identifier(key))
        if column.is_array:
            nulls = sql.SQL("(SELECT json_agg(u.i) FROM unnest({}) WITH ORDINALITY u(v, i) "
                            "WHERE jsonb_typeof(u.v) = 'null')").format(ref)
            marks.append((key, sql.SQL("{} IS NOT NULL").format(nulls), nulls))
        else:
            condition = sql.SQL("jsonb_typeof({}) = 'null'").format(ref)
            marks.append((key, condition,
                          sql.SQL("CASE WHEN {} THEN true END").format(condition)))
    if not marks:
        return whole
    flagged = sql.SQL("json_strip_nulls(json_build_object({}))").format(sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(key), value) for key, _, value in marks))
    return sql.SQL("CASE WHEN {any} THEN left({whole}::text, -1) || {prefix} || {flagged}::text "
                   "|| '}}' ELSE {whole}::text END").format(
        any=sql.SQL(" OR ").join(condition for _, condition, _ in marks), whole=whole,
        prefix=sql.Literal(f',"{JSON_NULL_KEY}":'), flagged=flagged)


_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_BINARY_TRAILER = b"\xff\xff"
_ONE_FIELD = b"\x00\x01"
_FIELD_HEAD = struct.Struct(">hi")  # field count, first field's length
_FIELD_SIZE = struct.Struct(">i")


def stream_table(conn: psycopg.Connection, table: Table, write: Callable[[bytes], None],
                 advance: Callable[[int], None],
                 source: sql.Composable | None = None,
                 mask: TableMask | None = None) -> tuple[int, str]:
    """Copy one table's rows into the file, ~1 MB at a time; returns (rows, sha256 hex).

    With a `mask`, each row is anonymized here, between the COPY and the file."""
    digest = hashlib.sha256()
    rows = 0
    first = True
    pending: list[memoryview | bytes] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal first, pending_bytes
        block = json_lines(pending)
        digest.update(block)  # row lines each followed by \n: exactly the contract's hash
        digest.update(b"\n")
        if not first:
            write(b",\n")
        write(block.replace(b"\n", b",\n"))
        advance(len(pending))
        first = False
        pending.clear()
        pending_bytes = 0

    with conn.cursor().copy(copy_query(table, source, mask)) as copy:
        header = True
        data: memoryview | bytes
        line: memoryview | bytes
        # PostgreSQL sends one row per message; psycopg types it Buffer, hands out memoryview:
        for data in copy:  # type: ignore[assignment]
            if header:
                data = _skip_binary_header(data)
                header = False
            if data == _BINARY_TRAILER:
                break
            # A row is: field count (1; 2 anonymizing), then each field's 4-byte length and
            # JSON text.
            if mask is not None:
                line = mask(*_two_fields(data, table))
            elif data[:2] != _ONE_FIELD or len(data) != 6 + int.from_bytes(data[2:6], "big"):
                raise OpsError(f"unexpected COPY BINARY framing in table {table.name}")
            else:
                line = data[6:]
            if len(line) > MAX_ROW_BYTES:
                raise OpsError(f"table {table.name} row {rows + 1} is {len(line) >> 20} MB as "
                               f"JSON, more than the {MAX_ROW_BYTES >> 20} MB a restore reads; "
                               "no backup file was written")
            pending.append(line)
            pending_bytes += len(line)
            rows += 1
            if pending_bytes >= BLOCK_BYTES:
                flush()
        for _ in copy:  # drain to the end of the COPY
            pass
    if pending:
        flush()
    if rows:
        write(b"\n")
    return rows, digest.hexdigest()


def table_digests(conn: psycopg.Connection, tables: list[str] | None = None
                  ) -> dict[str, tuple[int, str]]:
    """(rows, sha256) of each table (all, or those named), as a backup taken now in `conn`'s
    snapshot would record them: the very code that writes backups serialises the rows, and
    nothing is written anywhere (a second implementation could agree with itself and
    disagree with the file)."""
    with locked_snapshot(conn) if _idle_autocommit(conn) else nullcontext():
        pin_settings(conn, SNAPSHOT_SETTINGS, local=True)
        chosen = select_tables(discover_tables(conn), tables, None)
        refuse_rewritten(conn, chosen)
        return {t.name: stream_table(conn, t, _discard, no_progress) for t in chosen}


def _discard(data: bytes) -> None:
    return None



def _two_fields(data: memoryview | bytes, table: Table) -> tuple[memoryview | bytes, ...]:
    """The two JSON texts of an anonymized row (kept object, values to replace)."""
    count, size = _FIELD_HEAD.unpack_from(data)
    end = 6 + size
    if count != 2 or len(data) != end + 4 + _FIELD_SIZE.unpack_from(data, end)[0]:
        raise OpsError(f"unexpected COPY BINARY framing in table {table.name}")
    return data[6:end], data[end + 4:]


def _skip_binary_header(data: memoryview | bytes) -> memoryview | bytes:
    if data[:11] != _BINARY_SIGNATURE:
        raise OpsError("unexpected COPY BINARY header from the server")
    extension = int.from_bytes(data[15:19], "big")
    return data[19 + extension:]


def json_lines(rows: list[memoryview | bytes]) -> bytes:
    """The rows' JSON texts, one per line, joined by newlines (none after the last).

    row_to_json escapes control characters inside strings, so a raw newline or carriage
    return can only be whitespace between tokens, copied verbatim from a `json` column;
    it becomes a space (the same JSON value) so every row stays on one line.
    """
    block = b"\n".join(rows)
    if block.count(b"\n") == len(rows) - 1 and b"\r" not in block:
        return block
    return b"\n".join(bytes(r).replace(b"\n", b" ").replace(b"\r", b" ") for r in rows)


def _progress(report: Reporter, name: str,
              estimate: int) -> AbstractContextManager[Callable[[int], None]]:
    """A progress bar only for tables big enough to take a while."""
    if estimate >= PROGRESS_MIN_ROWS:
        return report.progress(f"📦 {name}", estimate)
    return nullcontext(no_progress)
