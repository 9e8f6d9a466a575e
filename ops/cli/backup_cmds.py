"""Backup commands: backup, backups, verify, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops.cli.anonymize_cmds import PolicyOption
from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.defaults import DEFAULT_JOBS
from ops.core.errors import NotFound, OpsError, UsageError
from ops.core.output import human_size, print_json, suggest, suggest_flag


def _names(value: str | None) -> list[str] | None:
    """`a,b , c` -> ["a", "b", "c"]; None when not given."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@app.command()
def backup(
    compress: Annotated[bool | None, typer.Option(
        "--compress/--no-compress", show_default=False,
        help="Write .json.gz (gzip level 1). Default: BACKUP_COMPRESS (off).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File (or directory) to write instead of BACKUP_DIR/backup-<ts>"
        ".json; a name ending in .gz is compressed.")] = None,
    tables: Annotated[str | None, typer.Option(
        "--tables", help="Only these tables (comma-separated); recorded in meta.")] = None,
    exclude_tables: Annotated[str | None, typer.Option(
        "--exclude-tables", help="Every table but these (comma-separated).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, show_default=False,
        help="Connections reading in parallel from the same snapshot (used for databases "
        f"over 64 MB). Default: BACKUP_JOBS ({DEFAULT_JOBS}).")] = None,
    anonymize: Annotated[bool, typer.Option(
        "--anonymize", help="Replace personal data as the policy says (a snapshot developers "
        "may restore); needs ANONYMIZE_SALT outside development.")] = False,
    policy: PolicyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a consistent JSON backup of every table (one snapshot, streamed, sha256 per table)."""
    from ops.anonymize.policy import load_policy
    from ops.backup.create import backup as backup_database

    if policy is not None and not anonymize:
        raise UsageError("--policy only applies with --anonymize",
                         hint=f"Add {suggest_flag('--anonymize')}.")
    cfg = settings()
    result = backup_database(cfg, output=output,
                             compress=cfg.backup_compress if compress is None else compress,
                             tables=_names(tables), exclude=_names(exclude_tables),
                             jobs=cfg.backup_jobs if jobs is None else jobs,
                             anonymize=load_policy(policy) if anonymize else None,
                             report=reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def backups(
    verify: Annotated[bool, typer.Option(
        "--verify", help="Fully verify each file (streams every file; slower).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List backups in BACKUP_DIR, newest first, with size, rows and completeness."""
    from ops.backup.files import leftover_partials
    from ops.backup.verify import describe_backups

    cfg = settings()
    listed = describe_backups(cfg.backup_dir, full_verify=verify)
    if as_json:
        print_json(listed)
        return
    out = reporter()
    if not listed:
        out.line(f"📂 No backups in {cfg.backup_dir} yet — create one with {suggest('backup')}.")
    else:
        out.line(f"📂 {len(listed)} backup(s) in {cfg.backup_dir}, newest first:")
        width = max(len(b.name) for b in listed)
    for b in listed:
        rows = f"{b.rows} rows" if b.rows is not None else "? rows"
        mark = "✅" if b.status.startswith(("verified", "complete")) else "❌"
        partial = f", PARTIAL: {b.partial}" if b.partial else ""
        out.line(f"{mark} {b.name:<{width}}  {human_size(b.size_bytes):>10}  {rows:>14}  "
                 f"{b.status}{partial}{' — ' + b.problem if b.problem else ''}")
    partials = leftover_partials(cfg.backup_dir)
    if partials:
        out.line(f"ℹ️  {len(partials)} unfinished temp file(s) ({partials[0].name}, ...): a "
                 "backup still running, or one that was killed; delete them if none is running.")


@app.command()
def verify(
    file: Annotated[str, typer.Argument(
        help="`latest` (newest backup in BACKUP_DIR), a file name in BACKUP_DIR, or a path.")]
    = "latest",
    as_json: JsonOption = False,
) -> None:
    """Stream a backup and check its structure, row counts and sha256 against its meta."""
    from ops.backup.files import list_backups
    from ops.backup.reader import resolve_backup
    from ops.backup.verify import verify_backup

    cfg = settings()
    if file == "latest":
        found = list_backups(cfg.backup_dir, include_safety=False)
        if not found:
            raise NotFound(f"no backups in {cfg.backup_dir} to verify",
                           hint=f"Create one with {suggest('backup')}, or name a file.")
        path = found[0].path
    else:
        path = resolve_backup(cfg.backup_dir, file)
    out = reporter(as_json)
    out.line(f"🔍 Verifying {path}...")
    result = verify_backup(path)
    if as_json:
        print_json(result)
    if not result.ok:
        raise OpsError(f"{path.name} is NOT a good backup: {result.problem}",
                       hint=f"Use another backup ({suggest('backups --verify')} lists them).")
    for name, rows in result.tables.items():
        out.line(f"✅ {name}: {rows} rows")
    out.line(f"✅ Backup verified: {result.checked}")
    out.line(f"📊 Tables: {len(result.tables)}, rows: {result.total_rows}")


@app.command()
def prune(
    keep: Annotated[int | None, typer.Option(
        "--keep", help="Keep the N newest backups (and the N newest safety backups).")] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Only delete backups older than this: 14d, 12h, 2w.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete (default: only show).")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old backups (never the newest good one); shows the plan unless --yes."""
    from ops.backup.prune import parse_age
    from ops.backup.prune import prune as prune_backups

    age = parse_age(older_than) if older_than is not None else None
    result = prune_backups(settings().backup_dir, keep=keep, older_than=age, yes=yes,
                           report=reporter(as_json))
    if as_json:
        print_json(result)
