"""`tasklets-db testdb serve|ensure|get|put|status`: fresh test databases from a pool."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.output import print_json

if TYPE_CHECKING:
    from ops.testdb.recipe import Recipe

testdb_app = typer.Typer(
    help="Fresh, migrated, seeded databases for tests: a template per hash of what builds "
    "it, clones made ahead, handed out over HTTP (serve) to any test runner.",
    no_args_is_help=True)
app.add_typer(testdb_app, name="testdb")


class Strategy(StrEnum):
    file_copy = "file_copy"
    wal_log = "wal_log"


SeedOption = Annotated[list[str] | None, typer.Option(
    "--seed", show_default=False, help="A seed the template holds (lookups, sample, a "
    "seeds/NAME.py); repeat for more, in order. Default: none (the schema only).")]
FromOption = Annotated[str | None, typer.Option(
    "--from", show_default=False, help="A backup (anonymized snapshot) restored into the "
    "template before the seeds: a name in BACKUP_DIR, a path or an object URL.")]
ServerOption = Annotated[str | None, typer.Option(
    "--server", envvar="TESTDB_SERVER", show_default=False,
    help="Where `testdb serve` listens (default TESTDB_SERVER, else http://127.0.0.1:5010).")]


def _recipe(seed: list[str] | None, snapshot: str | None) -> Recipe:
    from ops.testdb.recipe import Recipe

    return Recipe.from_request(seed or [], snapshot)


@testdb_app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on; beyond "
                                      "loopback TESTDB_TOKEN must be set.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 5010,
    seed: SeedOption = None,
    snapshot: FromOption = None,
    ready: Annotated[int, typer.Option("--ready", min=0, help="Databases made ahead per "
                                       "template.")] = 4,
    max_databases: Annotated[int, typer.Option("--max-databases", min=1, help="Databases "
                                               "the pool holds at once, idle and out.")] = 50,
    max_disk: Annotated[int | None, typer.Option("--max-disk", min=1, show_default=False,
                                                 help="Bound, in MB, on their estimated "
                                                 "size. Default: none.")] = None,
    lease: Annotated[float, typer.Option("--lease", min=0, help="Seconds a database may stay "
                                         "out before it is reclaimed (0: never).")] = 600,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Threads making and "
                                         "dropping databases.")] = 2,
    strategy: Annotated[Strategy, typer.Option("--strategy", help="CREATE DATABASE strategy "
                                               "(PostgreSQL 15+).")] = Strategy.file_copy,
    advertise_host: Annotated[str | None, typer.Option(
        "--advertise-host", envvar="TESTDB_ADVERTISE_HOST", show_default=False,
        help="The database host as clients reach it (default: the server's).")] = None,
    advertise_port: Annotated[int | None, typer.Option(
        "--advertise-port", envvar="TESTDB_ADVERTISE_PORT", show_default=False,
        help="The database port as clients reach it.")] = None,
) -> None:
    """Serve test databases over HTTP until stopped (TESTDB_DATABASE_URL, else DATABASE_URL,
    is the PostgreSQL server; its role needs CREATEDB)."""
    from ops.testdb.http import serve as run
    from ops.testdb.pool import Limits

    if os.environ.get("TESTDB_DATABASE_URL", "").strip():  # this command's server wins
        os.environ["DATABASE_URL"] = os.environ["TESTDB_DATABASE_URL"].strip()
    cfg = settings()
    limits = Limits(ready=ready, max_databases=max_databases,
                    max_disk_bytes=max_disk * 1_000_000 if max_disk else None,
                    lease_seconds=lease or None, workers=workers)
    run(cfg, host=host, port=port, recipe=_recipe(seed, snapshot), limits=limits,
        token=os.environ.get("TESTDB_TOKEN", ""), strategy=strategy.value,
        advertise_host=advertise_host, advertise_port=advertise_port, report=reporter())


@testdb_app.command()
def ensure(seed: SeedOption = None, snapshot: FromOption = None, server: ServerOption = None,
           as_json: JsonOption = False) -> None:
    """Build the template (once per hash) on the server; prints its hash."""
    from ops.testdb.client import Client

    found = Client.from_env(server).ensure(_recipe(seed, snapshot))
    if as_json:
        print_json(found)
    else:
        typer.echo(found.hash)


@testdb_app.command()
def get(
    template: Annotated[str | None, typer.Option(
        "--template", show_default=False, help="The template's hash (from `ensure`). "
        "Default: with --seed/--from that template, else the server's own.")] = None,
    seed: SeedOption = None, snapshot: FromOption = None, server: ServerOption = None,
    wait: Annotated[float, typer.Option("--wait", min=0, max=600, help="Seconds to wait for "
                                        "a database when none is ready.")] = 60,
    as_json: JsonOption = False,
) -> None:
    """Lease a database of your own; prints its URL (for `DATABASE_URL=$(...)`)."""
    from ops.testdb.client import Client

    client = Client.from_env(server)
    if template is None and (seed or snapshot):
        template = client.ensure(_recipe(seed, snapshot)).hash
    lease = client.lease(template, wait=wait)
    if as_json:
        print_json(lease)
    else:
        typer.echo(lease.url)


@testdb_app.command()
def put(
    database: Annotated[str, typer.Argument(help="The database's name or URL, as `get` gave "
                                            "it.")],
    recycle: Annotated[bool, typer.Option("--recycle", help="Hand it out again as it is: "
                                          "only when nothing was written to it.")] = False,
    server: ServerOption = None,
) -> None:
    """Give a database back (it is dropped, or recycled)."""
    from ops.testdb.client import Client, database_name

    name = database_name(database)
    Client.from_env(server).give_back(name, recycle=recycle)
    reporter().warn(f"✅ Returned {name}")


@testdb_app.command()
def status(server: ServerOption = None, as_json: JsonOption = False) -> None:
    """Templates, databases made ahead and out, leases, counters."""
    from ops.testdb.client import Client

    found = Client.from_env(server).status()
    if as_json:
        print_json(found)
        return
    out = reporter()
    for t in found["templates"]:
        out.line(f"🧱 {t['hash']}  {t['family']}  {t['size_bytes'] / 1e6:.1f} MB  "
                 f"{t['idle']} ready, {t['leased']} out"
                 + ("  (replaced)" if t["superseded"] else ""))
    c = found["counters"]
    out.line(f"📊 {c['handed_out']} handed out, {c['made']} made, {c['dropped']} dropped, "
             f"{c['reclaimed']} reclaimed, {c['orphans_dropped']} orphans dropped; hand-out "
             f"p95 {found['handout_ms']['p95']} ms, clone median {found['clone_ms']['median']} ms")
    if found.get("last_error"):
        out.line(f"⚠️  Last error: {found['last_error']}")
