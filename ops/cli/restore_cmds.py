"""Destructive commands: reset, restore, copy (each for the whole database or one tenant)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ops.cli.app import IdentityOption, JsonOption, app, reporter, settings
from ops.core.errors import UsageError
from ops.core.output import print_json

if TYPE_CHECKING:
    from ops.restore.reset import ResetResult
    from ops.restore.tenant import TenantResetResult

AllowProduction = Annotated[bool, typer.Option(
    "--allow-production", help="Allow a production target (APP_ENV or the database's marker).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
Rename = Annotated[str | None, typer.Option(
    "--rename", help="Load the tenant under this name (its name is taken, or you want another).")]


def _tenant_option(what: str) -> typer.models.OptionInfo:
    option: typer.models.OptionInfo = typer.Option(
        "--tenant", help=f"{what} one tenant only (a name or an id); every other tenant stays "
        "exactly as it is.")
    return option


@app.command()
def reset(
    confirm: Annotated[bool, typer.Option("--confirm", help="Really delete all data.")] = False,
    tenant: Annotated[str | None, _tenant_option("Empty")] = None,
    keep_tenant: Annotated[bool, typer.Option(
        "--keep-tenant", help="With --tenant: keep the tenant's own row (emptied, not removed).")]
    = False,
    dry_run: DryRun = False,
    allow_production: AllowProduction = False,
    as_json: JsonOption = False,
) -> None:
    """Empty every table (identities restarted) in one transaction; the schema stays."""
    result: ResetResult | TenantResetResult
    if tenant is None:
        if keep_tenant:
            raise UsageError("--keep-tenant goes with --tenant")
        from ops.restore.reset import reset as reset_database

        result = reset_database(settings(), confirm=confirm, dry_run=dry_run,
                                allow_production=allow_production, report=reporter(as_json))
    else:
        from ops.restore.tenant import reset_tenant

        result = reset_tenant(settings(), tenant, confirm=confirm, keep_tenant=keep_tenant,
                              dry_run=dry_run, allow_production=allow_production,
                              report=reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def restore(
    file: Annotated[str, typer.Argument(
        help="`latest` (newest complete full backup in BACKUP_DIR, a verified one when there is "
        "one; with --tenant, the newest that may hold the tenant), a name in BACKUP_DIR, a "
        "path or an object URL (.json, .json.zst, .json.gz, each with or without .age).")]
    = "latest",
    identity: IdentityOption = None,
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
    allow_anonymized: Annotated[bool, typer.Option(
        "--allow-anonymized", help="Restore an anonymized snapshot in full (every email, name "
        "and password hash replaced by fakes).")] = False,
    tenant: Annotated[str | None, _tenant_option("Replace")] = None,
    new_ids: Annotated[bool, typer.Option(
        "--new-ids", help="With --tenant: add the tenant under fresh ids instead of replacing "
        "it (e.g. into another database).")] = False,
    rename: Rename = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Restore to this moment: the newest backup before it, then the changes "
        "`capture` stored up to it. ISO 8601 with a zone (2026-12-07T14:32:00Z), an offset "
        "before now (-15m, -2h), or latest (the last change stored). Takes no FILE.")] = None,
    into_tenant: Annotated[str | None, typer.Option(
        "--into-tenant", metavar="TENANT", help="With --tenant: the live tenant (a name, slug "
        "or id) to replace, when the backup cannot show it is the same tenant (an older "
        "backup, or one of another database); under another id than the backup's, every row "
        "is loaded under a fresh id.")] = None,
    dry_run: DryRun = False,
    allow_production: AllowProduction = False,
    as_json: JsonOption = False,
) -> None:
    """Replace all data with a backup's, atomically (a safety backup is taken first)."""
    if at is not None:
        if file != "latest" or new_ids or rename is not None or only_listed_tables \
                or into_tenant is not None:
            raise UsageError("--at picks the backup itself: it takes no FILE, --new-ids, "
                             "--rename, --into-tenant or --only-listed-tables")
        from ops.restore.at_time import restore_at

        extra: dict[str, Any] = {} if tenant is not None else {"allow_anonymized": allow_anonymized}
        found = restore_at(settings(), at, tenant=tenant, identity=identity, dry_run=dry_run,
                           safety_backup=not no_safety_backup,
                           allow_production=allow_production,
                           allow_schema_mismatch=allow_schema_mismatch,
                           report=reporter(as_json), **extra)
        if as_json:
            print_json({**found.as_json(), "restore": found.restore})
        return
    if tenant is None:
        if new_ids or rename is not None or into_tenant is not None:
            raise UsageError("--new-ids, --rename and --into-tenant go with --tenant")
        from ops.restore.apply import restore as restore_database

        result = restore_database(
            settings(), file, identity=identity, safety_backup=not no_safety_backup,
            allow_production=allow_production, allow_schema_mismatch=allow_schema_mismatch,
            only_listed_tables=only_listed_tables, allow_anonymized=allow_anonymized,
            dry_run=dry_run, report=reporter(as_json))
    else:
        if only_listed_tables:
            raise UsageError("--only-listed-tables does not apply to --tenant (a tenant "
                             "restore replaces that tenant's rows of every table)")
        from ops.restore.tenant import restore_tenant

        result = restore_tenant(
            settings(), file, tenant, identity=identity, new_ids=new_ids, rename=rename,
            into=into_tenant,
            safety_backup=not no_safety_backup, allow_production=allow_production,
            allow_schema_mismatch=allow_schema_mismatch, dry_run=dry_run,
            report=reporter(as_json))
    if as_json:
        print_json(result)


@app.command()
def copy(
    tenant: Annotated[str, typer.Option(
        "--tenant", help="The tenant to copy (a name or an id in this database).")],
    to: Annotated[str, typer.Option(
        "--to", help="The database to copy it into (postgresql://... URL or libpq string).")],
    rename: Rename = None,
    dry_run: DryRun = False,
    allow_production: Annotated[bool, typer.Option(
        "--allow-production", help="Allow a target whose environment marker says production.")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Copy one tenant into another database under fresh ids (this one is only read)."""
    from ops.restore.tenant import copy_tenant

    result = copy_tenant(settings(), tenant, to, rename=rename,
                         allow_production=allow_production, dry_run=dry_run,
                         report=reporter(as_json))
    if as_json:
        print_json(result)
