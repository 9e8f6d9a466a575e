"""Backup commands: backup, backups (and backups check), verify (and its restore drill),
prune, compare."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from ops.cli.app import (
    CompressionOption,
    CompressOption,
    IdentityOption,
    JsonOption,
    KeepDaily,
    KeepLast,
    KeepMonthly,
    KeepWeekly,
    MetricsFileOption,
    PolicyOption,
    PushgatewayOption,
    app,
    compression_choice,
    reporter,
    retention_policy,
    settings,
)
from ops.core.defaults import DEFAULT_JOBS
from ops.core.errors import NotFound, OpsError, UsageError
from ops.core.output import human_size, print_json, suggest, suggest_flag

if TYPE_CHECKING:
    from ops.capture.status import LagCheck
    from ops.core.config import Settings


def _names(value: str | None) -> list[str] | None:
    """`a,b , c` -> ["a", "b", "c"]; None when not given."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@app.command()
def backup(
    compress: CompressOption = None,
    compression: CompressionOption = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="File, directory or object URL (s3://bucket/dir/name.json) to "
        "write instead of BACKUP_DIR/backup-<ts>.json; a name ending in .zst or .gz is "
        "compressed so.")]
    = None,
    encrypt_to: Annotated[str | None, typer.Option(
        "--encrypt-to", show_default=False, help="Encrypt with age to these public keys "
        "(age1… or ssh-ed25519/ssh-rsa, comma-separated); the name gets .age. Default: "
        "BACKUP_ENCRYPT_TO.")] = None,
    tables: Annotated[str | None, typer.Option(
        "--tables", help="Only these tables (comma-separated); recorded in meta.")] = None,
    exclude_tables: Annotated[str | None, typer.Option(
        "--exclude-tables", help="Every table but these (comma-separated).")] = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Only this tenant's rows (a name or an id), of every table; "
        "recorded in meta.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, show_default=False,
        help="Connections reading in parallel from the same snapshot (used for databases "
        f"over 64 MB). Default: BACKUP_JOBS, else {DEFAULT_JOBS} into a directory and 1 into "
        "a bucket.")] = None,
    pushgateway: PushgatewayOption = None,
    metrics_file: MetricsFileOption = None,
    anonymize: Annotated[bool, typer.Option(
        "--anonymize", help="Replace personal data as the policy says (a snapshot developers "
        "may restore); needs ANONYMIZE_SALT outside development.")] = False,
    policy: PolicyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a consistent JSON backup of every table (one snapshot, streamed, sha256 per table)."""
    from ops.anonymize.policy import load_policy
    from ops.backup.archive import Archive
    from ops.backup.create import backup as backup_database
    from ops.schedule.metrics import one_shot_metrics

    if policy is not None and not anonymize:
        raise UsageError("--policy only applies with --anonymize",
                         hint=f"Run {suggest_flag('--anonymize')}.")
    cfg = settings()
    archive = Archive.from_settings(cfg)
    with one_shot_metrics(cfg, archive, pushgateway=pushgateway, textfile=metrics_file,
                          warn=reporter().warn) as record:
        result = backup_database(cfg, archive=archive, output=output,
                                 compression=compression_choice(compress, compression, cfg),
                                 encrypt_to=encrypt_to, tables=_names(tables),
                                 exclude=_names(exclude_tables), tenant=tenant,
                                 jobs=jobs,
                                 anonymize=load_policy(policy) if anonymize else None,
                                 report=reporter(as_json))
        record(result)
    if as_json:
        print_json(result)


backups_app = typer.Typer(no_args_is_help=False)
app.add_typer(backups_app, name="backups")


@backups_app.callback(invoke_without_command=True)
def backups(
    ctx: typer.Context,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Fully verify each file (streams every file; slower).")] = False,
    identity: IdentityOption = None,
    chart: Annotated[str | None, typer.Option(
        "--chart", metavar="FILE", help="Instead of the list, write an SVG chart of the full "
        "backups' size and duration over time to FILE.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List backups in BACKUP_DIR (a directory or a bucket), newest first, with size, rows,
    kind, completeness and verdicts; `backups check` tells whether the newest good full one is
    recent. With --verify, a bad backup gets its .bad verdict and the exit status is 1."""
    if ctx.invoked_subcommand is not None:
        return
    if chart is not None:
        return _chart(chart, verify, as_json)
    from ops.backup.archive import Archive
    from ops.backup.encryption import identities_for
    from ops.backup.verify import bad_backup_error, describe_backups

    cfg = settings()
    archive = Archive.from_settings(cfg)
    listed = describe_backups(archive, full_verify=verify,
                              identities=identities_for(cfg, identity) if verify else ())
    failed = bad_backup_error(listed)
    if as_json:
        print_json(listed)
        raise typer.Exit(1 if failed else 0)
    out = reporter()
    if not listed:
        out.line(f"📂 No backups in {cfg.backup_dir} yet — create one with {suggest('backup')}.")
    else:
        out.line(f"📂 {len(listed)} backup(s) in {cfg.backup_dir}, newest first:")
        width = max(len(b.name) for b in listed)
    for b in listed:
        rows = f"{b.rows} rows" if b.rows is not None else "? rows"
        mark = "✅" if b.good else "☑️ " if b.status.startswith("complete") else \
            "🔒" if b.status.startswith("encrypted") else "❌"
        partial = f", PARTIAL: {b.partial}" if b.partial else ""
        tenant = f", tenant {b.tenant}" if b.tenant else ""
        kind = f", {b.kind.upper()}" if b.kind not in (None, "full", "partial", "tenant") \
            else ""
        sealed = " 🔒 encrypted" if b.encrypted and not b.status.startswith("encrypted") else ""
        out.line(f"{mark} {b.name:<{width}}  {human_size(b.size_bytes):>10}  {rows:>14}  "
                 f"{b.status}{sealed}{kind}{partial}{tenant}"
                 f"{' — ' + b.problem if b.problem else ''}")
    from ops.capture.coverage import coverage

    changes = coverage(archive)  # (one listing: `segments()` first listed the store again)
    if changes.segments:
        out.line(f"🔁 {changes.line()}")
    partials = archive.incomplete_uploads()
    if partials:
        out.line(f"ℹ️  {len(partials)} unfinished upload(s) ({partials[0].name}, ...): a "
                 "backup still running, or one that was killed; `prune` removes those over a "
                 "day old.")
    if failed:
        raise failed


def _chart(path: str, verify: bool, as_json: bool) -> None:
    from ops.backup.archive import Archive
    from ops.backup.history import chart_backups

    if verify:
        raise UsageError("--chart and --verify do not mix",
                         hint=f"Verify with {suggest('backups --verify')}, then chart.")
    result = chart_backups(Archive.from_settings(settings()), path)
    if as_json:
        print_json(result)
        return
    left_out = f" ({result.left_out} left out: their kind or completeness is unknown)" \
        if result.left_out else ""
    reporter().line(f"📈 Chart of {result.charted} full backup(s) in {result.location} "
                    f"written to {result.chart}{left_out}")


@backups_app.command("coverage")
def backups_coverage(as_json: JsonOption = False) -> None:
    """What `restore --at` can reach: the change segments `capture` stored, from when to when,
    gaps in their LSN chain, and the lag (now - the last stored change). Exit 1 on a gap."""
    from ops.backup.archive import Archive
    from ops.capture.coverage import coverage

    found = coverage(Archive.from_settings(settings()))
    if as_json:
        print_json(found.as_json())
        raise typer.Exit(1 if found.gaps else 0)
    if found.gaps:
        raise OpsError(f"change segments have gaps: {found.line()}",
                       hint="A restore --at across a gap is refused; a full backup after the "
                       "gap starts a new covered range.")
    reporter().line(f"🔁 {found.line()}")


@backups_app.command("check")
def backups_check(
    max_age: Annotated[str | None, typer.Option(
        "--max-age", metavar="AGE", show_default=False, help="The oldest the newest good "
        "backup may be (90s, 30m, 26h, 2d). Default: BACKUP_MAX_AGE, else 26h.")] = None,
    max_capture_lag: Annotated[str | None, typer.Option(
        "--max-capture-lag", metavar="DURATION", show_default=False, help="Also fail when "
        "the oldest change capture has not stored is older than DURATION (30s, 5m), or "
        "nothing is captured (no slot: CAPTURE_SLOT, default tasklets_capture).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when the newest good backup is younger than --max-age (and, with
    --max-capture-lag, capture is that close behind), 1 otherwise or when there is none (for
    monitors, cron and container health checks)."""
    from ops.backup.archive import Archive
    from ops.backup.freshness import DEFAULT_MAX_AGE, check_freshness

    cfg = settings()
    archive = Archive.from_settings(cfg)
    check = check_freshness(archive, max_age or cfg.backup_max_age or DEFAULT_MAX_AGE)
    lag = _capture_lag(cfg, max_capture_lag) if max_capture_lag else None
    ok = check.ok and (lag is None or lag.ok)
    if as_json:
        print_json({**asdict(check), "capture": lag} if lag is not None else check)
        raise typer.Exit(0 if ok else 1)
    if not ok:
        raise OpsError("; ".join(c.line for c in (check, lag) if c is not None and not c.ok))
    for line in (check.line, lag.line if lag is not None else None):
        if line:
            reporter().line(f"✅ {line}")


def _capture_lag(cfg: Settings, max_lag: str) -> LagCheck:
    from ops.capture.slot import configured_slot
    from ops.capture.status import capture_status, check_capture_lag
    from ops.core.db import connection

    slot = configured_slot()
    with connection(cfg, autocommit=True) as conn:
        return check_capture_lag(capture_status(conn, None, slot, slot), max_lag)


@app.command()
def verify(
    file: Annotated[str, typer.Argument(
        help="`latest` (newest backup in BACKUP_DIR), a name in BACKUP_DIR, a path or an "
        "object URL.")] = "latest",
    restore: Annotated[bool, typer.Option(
        "--restore", help="A restore drill: restore the backup into a scratch database "
        "(created and dropped on the same server, or SCRATCH_DATABASE_URL), compare every "
        "table with its meta again on the server, run `check`, remove it. The live database "
        "is never touched.")] = False,
    at: Annotated[str | None, typer.Option(
        "--at", help="With --restore: drill `restore --at TIME` (the backup TIME picks and "
        "the change segments up to it, replayed into the scratch database).")] = None,
    changes: Annotated[bool, typer.Option(
        "--changes", help="Check every change segment instead: stored bytes against its "
        "sidecar, content against its trailer checksum (with the identity when encrypted), "
        "and that their LSN ranges follow each other without a gap.")] = False,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stream a backup and check its structure, row counts and sha256 against its meta."""
    if at is not None and not restore:
        raise UsageError("--at goes with --restore (a drill of restore --at)")
    if at is not None and file != "latest":
        raise UsageError(f"--at picks the backup itself (the newest complete one before "
                         f"TIME), so {file} would not be drilled",
                         hint="Give --at TIME or a backup, not both.")
    if changes:
        return _verify_changes(identity, as_json)
    if restore:
        return _restore_drill(file, identity, as_json, at)
    from ops.backup.archive import Archive
    from ops.backup.encryption import identities_for
    from ops.backup.verify import CHECKED_STORED, verify_and_record

    cfg = settings()
    archive = Archive.from_settings(cfg)
    if file == "latest":  # the newest, whatever it looks like: verify finds what is wrong
        found = archive.backups(include_safety=False)
        if not found:
            raise NotFound(f"no backups in {cfg.backup_dir} to verify",
                           hint=f"Create one with {suggest('backup')}, or name a file.")
        ref = found[0].ref
    else:
        ref = archive.resolve(file)
    out = reporter(as_json)
    out.line(f"🔍 Verifying {ref}...")
    result = verify_and_record(archive, ref, identities_for(cfg, identity))
    if as_json:
        print_json(result)
    if not result.ok:
        raise OpsError(f"{ref.name} is NOT a good backup: {result.problem}",
                       hint=f"Use another backup ({suggest('backups --verify')} lists them).")
    for name, rows in result.tables.items():
        out.line(f"✅ {name}: {rows} rows")
    out.line(f"✅ Backup verified: {result.checked}")
    if result.checked == CHECKED_STORED:
        out.line("💡 Its contents (rows, per-table checksums) are checked with the identity: "
                 f"set BACKUP_IDENTITY_FILE or run {suggest_flag('--identity FILE')}.")
    else:
        out.line(f"📊 Tables: {len(result.tables)}, rows: {result.total_rows}")


def _verify_changes(identity: str | None, as_json: bool) -> None:
    from ops.backup.archive import Archive
    from ops.backup.encryption import identities_for
    from ops.capture.verify import verify_changes

    cfg = settings()
    result = verify_changes(Archive.from_settings(cfg), identities_for(cfg, identity),
                            report=reporter(as_json))
    if as_json:
        print_json(result)
    if not result.ok:
        raise OpsError(f"change segments are NOT whole: {result.problems[0]}",
                       hint="restore --at refuses times past the first problem; a full "
                       "backup after it starts a new covered range.")


def _restore_drill(file: str, identity: str | None, as_json: bool,
                   at: str | None = None) -> None:
    from ops.restore.drill import restore_drill

    result = restore_drill(settings(), file, identity=identity, at=at,
                           report=reporter(as_json))
    if as_json:
        print_json(result)
    if not result.ok:
        raise OpsError(f"restore drill of {result.backup} FAILED: {result.problem}",
                       hint="The live database was not touched.")


@app.command()
def prune(
    keep: Annotated[int | None, typer.Option(
        "--keep", help="Keep the N newest backups (and the N newest safety backups).")] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Only delete backups older than this: 14d, 12h, 2w.")] = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", metavar="KIND", help="Prune backups of this kind instead (full, tenant, "
        "anonymized, partial, safety; repeatable). Default: full backups, and safety "
        "backups counted on their own.")] = None,
    policy: Annotated[bool, typer.Option(
        "--policy", help="Apply the retention policy: the --keep-last/-daily/-weekly/-monthly "
        "given, else BACKUP_KEEP_*.")] = False,
    keep_last: KeepLast = None,
    keep_daily: KeepDaily = None,
    keep_weekly: KeepWeekly = None,
    keep_monthly: KeepMonthly = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete (default: only show).")]
    = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only show the plan (what is kept, by which rule; what goes): the "
        "default without --yes.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old full backups (never the newest good one, nor the newest verified one); shows
    the plan unless --yes."""
    from ops.backup.archive import Archive
    from ops.backup.prune import parse_age
    from ops.backup.prune import prune as prune_backups

    if yes and dry_run:
        raise UsageError("--yes and --dry-run contradict each other", hint="Give one.")
    cfg = settings()
    given = any(v is not None for v in (keep_last, keep_daily, keep_weekly, keep_monthly))
    rules = retention_policy(cfg, keep_last, keep_daily, keep_weekly, keep_monthly) \
        if policy or given else None
    if policy and rules is None:
        raise UsageError("--policy needs retention rules",
                         hint="Pass --keep-last/--keep-daily/--keep-weekly/--keep-monthly, or "
                         "set BACKUP_KEEP_LAST, BACKUP_KEEP_DAILY, ...")
    age = parse_age(older_than) if older_than is not None else None
    result = prune_backups(Archive.from_settings(cfg), keep=keep, older_than=age,
                           policy=rules, kinds=kind, yes=yes, report=reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def compare(
    file: Annotated[str, typer.Argument(
        help="`latest` (newest complete backup in BACKUP_DIR), a name in BACKUP_DIR, a path "
        "or an object URL.")] = "latest",
    identity: IdentityOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that the database holds exactly a backup's data (row counts and sha256)."""
    from ops.backup.compare import compare_database

    result = compare_database(settings(), file, identity=identity, report=reporter(as_json))
    if as_json:
        print_json(result)
