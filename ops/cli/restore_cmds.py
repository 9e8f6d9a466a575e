"""Destructive commands: reset, restore."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.output import print_json

AllowProduction = Annotated[bool, typer.Option(
    "--allow-production", help="Allow a production target (APP_ENV or the database's marker).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]


@app.command()
def reset(
    confirm: Annotated[bool, typer.Option("--confirm", help="Really delete all data.")] = False,
    dry_run: DryRun = False,
    allow_production: AllowProduction = False,
    as_json: JsonOption = False,
) -> None:
    """Empty every table (identities restarted) in one transaction; the schema stays."""
    from ops.restore.reset import reset as reset_database

    result = reset_database(settings(), confirm=confirm, dry_run=dry_run,
                            allow_production=allow_production, report=reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def restore(
    file: Annotated[str, typer.Argument(
        help="`latest` (newest complete backup in BACKUP_DIR), a name in BACKUP_DIR, a path "
        "or an object URL (.json, .json.gz, either with .age).")] = "latest",
    identity: Annotated[str | None, typer.Option(
        "--identity", show_default=False, help="The age identity file (or ssh private key) "
        "that decrypts an encrypted backup. Default: BACKUP_IDENTITY_FILE.")] = None,
    no_safety_backup: Annotated[bool, typer.Option(
        "--no-safety-backup", help="Skip the pre-restore backup of the current data.")] = False,
    allow_schema_mismatch: Annotated[bool, typer.Option(
        "--allow-schema-mismatch",
        help="Load a backup from another schema revision: the columns both sides have.")]
    = False,
    only_listed_tables: Annotated[bool, typer.Option(
        "--only-listed-tables",
        help="Leave tables the backup does not contain untouched (default: emptied).")]
    = False,
    dry_run: DryRun = False,
    allow_production: AllowProduction = False,
    as_json: JsonOption = False,
) -> None:
    """Replace all data with a backup's, atomically (a safety backup is taken first)."""
    from ops.restore.apply import restore as restore_database

    result = restore_database(
        settings(), file, identity=identity, safety_backup=not no_safety_backup,
        allow_production=allow_production,
        allow_schema_mismatch=allow_schema_mismatch, only_listed_tables=only_listed_tables,
        dry_run=dry_run, report=reporter(as_json))
    if as_json:
        print_json(result)
