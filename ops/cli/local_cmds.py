"""`tasklets-db local ...`: the project-local PostgreSQL behind `make ... RUN=local`."""

from __future__ import annotations

import typer

from ops.cli.app import app, state

local_app = typer.Typer(
    help="The project-local PostgreSQL (.localpg/) that `make ... RUN=local` uses when no "
    "DATABASE_URL is configured.", no_args_is_help=True)
app.add_typer(local_app, name="local")


def _url() -> str:
    from ops.dev.localdb import relative, url_to_use

    url, started = url_to_use(state.env_file)
    if started is not None and started.secured:
        typer.echo("🔐 The project-local PostgreSQL now requires a password for every "
                   f"connection (scram-sha-256), kept in {state.env_file or '.env'} as "
                   "LOCALPG_PASSWORD", err=True)
    if started is not None and started.started:
        typer.echo(f"🐘 Started the project-local PostgreSQL on 127.0.0.1:{started.port} "
                   f"({relative(started.data_dir)}; stop it with `make down RUN=local`)",
                   err=True)
    return url


@local_app.command()
def url() -> None:
    """Print the DATABASE_URL to use, as configured (for scripts); starts the local database
    when none is configured."""
    typer.echo(_url())


@local_app.command()
def up() -> None:
    """Like `url`, but say which database, with any password masked."""
    from ops.core.config import mask_url

    typer.echo(f"✅ Database: {mask_url(_url())}")


@local_app.command()
def psql() -> None:
    """psql against that database (the password only in psql's environment, never in argv)."""
    from ops.dev.localdb import exec_psql

    exec_psql(_url())


@local_app.command()
def stop() -> None:
    """Stop the project-local PostgreSQL (its data is kept)."""
    from ops.dev.localdb import stop_local_db

    typer.echo("🛑 Stopped the project-local PostgreSQL" if stop_local_db()
               else "ℹ️  The project-local PostgreSQL is not running", err=True)


@local_app.command()
def status() -> None:
    """Say whether the project-local PostgreSQL runs, and where."""
    from ops.dev.localdb import LOCAL_DIR, local_db_running, recorded_port, relative

    if local_db_running():
        typer.echo(f"🐘 The project-local PostgreSQL runs on 127.0.0.1:{recorded_port(LOCAL_DIR)} "
                   f"({relative(LOCAL_DIR)})", err=True)
    else:
        typer.echo("ℹ️  The project-local PostgreSQL is not running", err=True)
