"""Restore drills (`verify --restore`): prove a backup restores, without touching the live data.

The backup is restored into a scratch database - a new one created next to the live one (the
role needs CREATEDB) and dropped afterwards, or the database SCRATCH_DATABASE_URL names,
emptied afterwards - then checked three ways:
- the restore itself compares every table's rows and sha256 with the backup's meta;
- the restored tables are serialised again on the server, exactly as `backup` does, and
  their row counts and sha256 compared with the meta once more, so what sits in the database
  (not only what was read from the file) is the backup's data;
- `check` (ops.schema.migrate.schema_differences) finds no drift in the scratch database.
The live database is never written to: a new scratch database is created and dropped
through the server's maintenance database (`postgres`, else `template1`); a given one is
checked first (not the live database as the servers identify them, not production-marked,
no app data unless a drill marked it as its scratch database), for which the live database
is connected to once, to read its identity.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from ops.backup.archive import Archive
from ops.backup.create import table_digests
from ops.backup.encryption import identities_for
from ops.backup.files import BackupRef, is_encrypted_name, read_meta, utc_now
from ops.backup.reader import BackupReader
from ops.core.config import Settings, url_with_database
from ops.core.db import (
    DatabaseIdentity,
    connect,
    database_identity,
    first_line,
    identity_of,
    scalar,
    target_description,
)
from ops.core.errors import OpsError, Refused
from ops.core.guard import PRODUCTION, is_scratch, mark_scratch, stored_environment
from ops.core.output import SILENT, Reporter
from ops.restore.apply import restore
from ops.restore.reset import reset
from ops.schema.migrate import push, schema_differences

SCRATCH_PREFIX = "tasklets_drill_"
# Tables whose rows mean a database holds the app's data (a scratch target must not).
APP_DATA_TABLES = ("tenants", "users")
MAINTENANCE_DATABASES = ("postgres", "template1")


@dataclass
class DrillResult:
    ok: bool
    backup: str  # where the backup was read from
    scratch: str = ""  # host:port/database of the scratch database (never credentials)
    scratch_created: bool = False  # created (and dropped) for the drill, or given
    tables: dict[str, int] = field(default_factory=dict)  # rows restored and checked
    total_rows: int = 0
    checked: list[str] = field(default_factory=list)  # what was compared, in order
    seconds: float = 0.0
    finished: str = ""  # when it ended (ISO 8601)
    problem: str | None = None  # one line: the first thing that went wrong


def restore_drill(settings: Settings, source: str | BackupRef | None = "latest", *,
                  archive: Archive | None = None, identity: str | None = None,
                  at: str | None = None, report: Reporter = SILENT) -> DrillResult:
    """Restore `source` (latest: the newest full backup; a name in the archive, a path, an
    object URL or a BackupRef) into a scratch database, check it, and remove it; problems
    are reported in the result, never raised. With `at` (restore --at's TIME) the backup is
    the one that time picks and the change segments up to it are replayed too."""
    started = time.monotonic()
    result = DrillResult(ok=False, backup=str(source))
    try:
        archive = archive or Archive.from_settings(settings)
        if at is not None:
            with _scratch_database(settings, result, report) as scratch:
                _drill_at(scratch, archive, at, identity, result, report)
            result.ok = True
            return _finish(result, started, report)
        ref = source if isinstance(source, BackupRef) else archive.resolve(source)
        result.backup = str(ref)
        identities = identities_for(settings, identity)
        with _scratch_database(settings, result, report) as scratch:
            report.line(f"🧪 Restore drill: {ref.name} into {result.scratch}")
            _drill(scratch, archive, ref, identities, result, report)
        result.ok = True
    except OpsError as exc:
        result.problem = exc.message
    return _finish(result, started, report)


def _finish(result: DrillResult, started: float, report: Reporter) -> DrillResult:
    result.seconds = round(time.monotonic() - started, 3)
    result.finished = utc_now().isoformat()
    if result.ok:
        report.line(f"✅ Restore drill passed: {result.total_rows} rows in "
                    f"{len(result.tables)} tables ({result.seconds:.1f}s)")
    return result


def _prepare_scratch(scratch: Settings, result: DrillResult) -> None:
    """Migrate the scratch database, and mark one the drill did not create as scratch before
    it holds data (a drill killed later leaves it marked, so the next drill may use it)."""
    push(scratch)
    if not result.scratch_created:
        with connect(scratch, autocommit=True) as conn:
            mark_scratch(conn)


def _drill(scratch: Settings, archive: Archive, ref: BackupRef, identities: Sequence[Any],
           result: DrillResult, report: Reporter) -> None:
    _prepare_scratch(scratch, result)
    # an anonymized snapshot named by the operator is drilled as it is
    restored = restore(scratch, ref, archive=archive, identity=list(identities),
                       safety_backup=False, allow_anonymized=True)
    result.tables = dict(restored.tables)
    result.total_rows = restored.total_rows
    against = "row counts and sha256 against meta" if restored.checksums_verified \
        else "structure only (no meta)"
    result.checked.append(f"restore: {against}")
    report.line(f"✅ Restored {result.total_rows} rows ({against})")
    checked = _compare_on_server(scratch, _meta(ref, identities), restored.tables)
    result.checked.append(f"server: {checked}")
    report.line(f"✅ Serialised again on the server: {checked}")
    _schema_check(scratch, result, report)


def _schema_check(scratch: Settings, result: DrillResult, report: Reporter) -> None:
    differences = schema_differences(scratch)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise OpsError(f"the scratch database differs from the models: {differences[0]}{more}")
    result.checked.append("check: no schema drift")
    report.line("✅ Schema check: the scratch database matches the models")


def _drill_at(scratch: Settings, archive: Archive, at: str, identity: str | None,
              result: DrillResult, report: Reporter) -> None:
    """restore --at into the scratch database: every segment up to TIME read, checked and
    replayed in the restore's transaction, foreign keys validated, then `check`."""
    from ops.restore.at_time import restore_at

    _prepare_scratch(scratch, result)
    report.line(f"🧪 Restore drill to {at} into {result.scratch}")
    done = restore_at(scratch, at, archive=archive, identity=identity, safety_backup=False,
                      allow_anonymized=True)
    result.backup = done.plan.backup.name
    result.tables = dict(done.restore.tables)
    result.total_rows = done.restore.total_rows
    replayed = (f"restore --at {done.plan.at.isoformat()}: {done.plan.backup.name}, "
                f"{len(done.plan.segments)} change segment(s), "
                f"{done.plan.counts.transactions} transaction(s) replayed; foreign keys "
                "validated")
    result.checked.append(replayed)
    report.line(f"✅ {replayed}")
    _schema_check(scratch, result, report)


def _meta(ref: BackupRef, identities: Sequence[Any]) -> dict[str, Any] | None:
    """The backup's meta: from its tail, or (encrypted: the tail is ciphertext) by reading
    the file through."""
    if not is_encrypted_name(ref.name):
        return read_meta(ref)
    with BackupReader(ref, identities=identities) as reader:
        for section in reader.sections():
            section.drain()
        return reader.meta


def _compare_on_server(scratch: Settings, meta: dict[str, Any] | None,
                       restored: dict[str, int]) -> str:
    """Serialise every table as `backup` does and compare with meta (or, without meta, with
    the rows restored); returns what was compared."""
    counts = (meta or {}).get("rowCounts") or restored
    sums = (meta or {}).get("sha256") or {}
    with connect(scratch, autocommit=True) as conn:
        digests = table_digests(conn)
    for name, (rows, digest) in digests.items():
        expected = counts.get(name, 0)
        if rows != expected:
            raise OpsError(f"table {name} holds {rows} rows after the restore, the "
                           f"backup has {expected}")
        if name in sums and sums[name] != digest:
            raise OpsError(f"table {name}: the restored rows do not serialise to "
                           "the backup's sha256 (a value did not come back exactly)")
    return "row counts and sha256 match meta" if sums else "row counts match"


# ---------------------------------------------------------------- the scratch database


@contextlib.contextmanager
def _scratch_database(settings: Settings, result: DrillResult,
                      report: Reporter) -> Iterator[Settings]:
    """Settings aimed at the scratch database; it is dropped (or, given, emptied) after."""
    if settings.scratch_database_url:
        scratch = _scratch_settings(settings, settings.scratch_database_url)
        result.scratch = target_description(scratch.database_url)
        _refuse_unsafe_scratch(settings, scratch, result.scratch)
        try:
            yield scratch
        finally:
            with contextlib.suppress(OpsError):
                reset(scratch, confirm=True)
                report.line(f"🧹 Emptied the scratch database {result.scratch}")
        return
    admin = _maintenance(settings)
    name = f"{SCRATCH_PREFIX}{utc_now():%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
    with connect(admin, autocommit=True) as conn:
        may = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles "
                           "WHERE rolname = current_user").fetchone()
        if not (may and may[0]):
            raise OpsError("the database role may not create databases (CREATEDB), so the "
                           "drill has nowhere to restore",
                           hint="Grant it CREATEDB, or set SCRATCH_DATABASE_URL to a database "
                           "the drill may overwrite.")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    scratch = _scratch_settings(settings, url_with_database(settings.database_url, name))
    result.scratch = target_description(scratch.database_url)
    result.scratch_created = True
    try:
        yield scratch
    finally:
        _drop(admin, name, report)


def _refuse_unsafe_scratch(settings: Settings, scratch: Settings, shown: str) -> None:
    """Refuse a SCRATCH_DATABASE_URL database that is the live one (as the servers identify
    them: `localhost` and `127.0.0.1`, or a DNS alias, name the same database), that is
    production-marked, or that holds the app's data without being a drill's scratch
    database (marked by the drill that first used it)."""
    with connect(scratch, autocommit=True) as conn:
        here = database_identity(conn)
        environment = stored_environment(conn)
        marked = is_scratch(conn)
        held = _app_rows(conn)
    try:
        live: DatabaseIdentity | None = identity_of(settings)
    except OpsError:  # the live database is down: the checks below still hold
        live = None
    fix = ("Point SCRATCH_DATABASE_URL at a database of its own (its data is replaced by "
           "every drill), or leave it unset: the drill then creates one and drops it.")
    if live is not None and live.same_database(here):
        raise Refused(f"SCRATCH_DATABASE_URL ({shown}) reaches the live database (the server "
                      f"identifies both as {here.database}, oid {here.database_oid}); a drill "
                      "would replace its data", hint=fix)
    if environment == PRODUCTION:
        raise Refused(f"the scratch database {shown} is production-marked; a drill would "
                      "replace its data", hint=fix)
    if held and not marked:
        raise Refused(f"the scratch database {shown} holds the app's data ({held}) and is not "
                      "a drill's scratch database; a drill would replace it",
                      hint=f"{fix} Once empty, the first drill marks it as its own.")


def _app_rows(conn: psycopg.Connection) -> str:
    """`tenants: 3, users: 12`: the app's data in a database (empty: none, or no such tables)."""
    held = []
    for table in APP_DATA_TABLES:
        if scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)):
            rows = scalar(conn, sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT 1000) t")
                          .format(sql.Identifier("public", table)))
            if rows:
                held.append(f"{table}: {rows}{'+' if rows == 1000 else ''}")
    return ", ".join(held)


def _scratch_settings(settings: Settings, url: str) -> Settings:
    """The drill's own settings: the scratch database, safety backups off, and a `test`
    environment marker for what it pushes (a production marker there still refuses)."""
    return replace(settings.with_url(url), app_env="test")


def _maintenance(settings: Settings) -> Settings:
    """Settings for the server's maintenance database, where databases are created and
    dropped (never the live database)."""
    failure: OpsError | None = None
    for dbname in MAINTENANCE_DATABASES:
        candidate = settings.with_url(url_with_database(settings.database_url, dbname))
        try:
            connect(candidate).close()
            return candidate
        except OpsError as exc:
            failure = failure or exc
    assert failure is not None
    raise OpsError(f"cannot reach the server's maintenance database to create a scratch "
                   f"database: {failure.message}",
                   hint="Set SCRATCH_DATABASE_URL to a database the drill may overwrite.")


def _drop(admin: Settings, name: str, report: Reporter) -> None:
    try:
        with connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        report.line(f"🗑️  Dropped the scratch database {name}")
    except (OpsError, psycopg.Error) as exc:
        message = exc.message if isinstance(exc, OpsError) else first_line(exc)
        report.warn(f"⚠️  Could not drop the scratch database {name}: {message}; drop it by "
                    "hand")
