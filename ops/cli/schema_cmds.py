"""Schema commands: push, generate, check, status."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.errors import OpsError
from ops.core.output import human_size, print_json, suggest, suggest_flag


@app.command()
def push(
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it.")]
    = False,
    allow_production: Annotated[bool, typer.Option(
        "--allow-production", help="Let APP_ENV replace a production environment marker "
        "(without it, a database marked production stays production).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending Alembic migrations (alembic upgrade head) and record APP_ENV as the
    database's environment marker."""
    from ops.schema import migrate

    cfg = settings()
    if sql:
        typer.echo(migrate.upgrade_sql(cfg), nl=False)
        return
    result = migrate.push(cfg, reporter(as_json), allow_production=allow_production)
    if as_json:
        print_json(result)


@app.command()
def generate(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision changes.")],
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Write a revision even when the models and the database match "
        "(for a data migration you fill in by hand).")] = False,
) -> None:
    """Autogenerate a migration from the difference between the models and the database."""
    from ops.schema import migrate

    out = reporter()
    path = migrate.generate(settings(), message, allow_empty=allow_empty)
    if path is None:
        out.line("✅ Nothing to generate: the models and the database match; no migration "
                 "was written.")
        out.line(f"💡 For an empty one to fill in by hand: {suggest_flag('--allow-empty')}")
        return
    out.line(f"✅ Generated {path}")
    out.line(f"📝 Review it, then run {suggest('push')}.")


@app.command()
def check() -> None:
    """Exit 1 when the database and ops/schema/models.py have drifted, naming the differences."""
    from ops.schema import migrate

    diffs = migrate.schema_differences(settings())
    if diffs:
        for diff in diffs:
            typer.echo(f"❌ {diff}")
        raise OpsError(
            f"schema drift: {len(diffs)} difference(s) between the database and the models "
            "(ops/schema/models.py)",
            hint=f"Run {suggest('push')}, or {suggest('generate -m WHAT')} for a model change.",
        )
    typer.echo("✅ Database schema matches the models (no drift).")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show the target, server version, revision, row counts and latest backup."""
    from dataclasses import asdict

    from ops.backup.archive import Archive
    from ops.schema.status import database_status

    cfg = settings()
    result = database_status(cfg)
    latest = next(iter(Archive.from_settings(cfg).backups(include_safety=False)), None)
    if as_json:
        print_json({**asdict(result), "latest_backup": latest and {
            "name": latest.name, "timestamp": latest.timestamp, "size": latest.size}})
        return
    out = reporter()
    out.line(f"🎯 Target: {result.target}")
    out.line(f"🐘 Server: PostgreSQL {result.server_version}")
    marker = f" (marker in database: {result.stored_environment})" \
        if result.stored_environment else ""
    out.line(f"🏷️  Environment: {result.environment}{marker}")
    state_text = "up to date" if result.up_to_date else "PENDING MIGRATIONS — run `push`"
    out.line(f"📜 Revision: {result.current_revision or 'none'} (head: {result.head_revision})"
             f" — {state_text}")
    if result.tables:
        out.line(f"📊 Tables: {len(result.tables)}, rows: {result.total_rows}")
        width = max(len(name) for name in result.tables)
        for name, count in result.tables.items():
            out.line(f"   {name:<{width}}  {count:>10}")
    else:
        out.line(f"📊 No Tasklets tables yet — run {suggest('push')}.")
    if latest:
        out.line(f"💾 Latest backup: {latest.name} ({human_size(latest.size)})")
    else:
        out.line("💾 No backups yet.")
