"""`tasklets-db import beads`: a beads issues.jsonl into epics, features and tasks."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.defaults import DEFAULT_BEADS_FILE, DEFAULT_BEADS_PRODUCT
from ops.core.output import print_json

import_app = typer.Typer(help="Import work items from other trackers.", no_args_is_help=True)
app.add_typer(import_app, name="import")


class Via(StrEnum):
    db = "db"
    api = "api"


@import_app.command()
def beads(
    file: Annotated[Path, typer.Option(
        "--file", "-f", envvar="BEADS_FILE", help="The beads export (env BEADS_FILE).")]
    = Path(DEFAULT_BEADS_FILE),
    product: Annotated[str, typer.Option(help="Product of the SysTech tenant to import into.")]
    = DEFAULT_BEADS_PRODUCT,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would change; write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Import the valid lines and list the invalid ones "
        "(default: any invalid line aborts, nothing written).")] = False,
    include_ephemeral: Annotated[bool, typer.Option(
        "--include-ephemeral", help="Also import ephemeral/wisp issues.")] = False,
    via: Annotated[Via, typer.Option(help="Write directly to the database or through the API.")]
    = Via.db,
    api_url: Annotated[str, typer.Option(help="API base URL (with --via api).")]
    = "http://localhost:8000",
    email: Annotated[str, typer.Option(help="API login (with --via api); password from "
                                       "TASKLETS_API_PASSWORD.")] = "ramesh@systech.com",
    as_json: JsonOption = False,
) -> None:
    """Import a beads issues.jsonl (every format version) idempotently: re-running changes
    nothing; a newer export updates, adds and tombstone-deletes."""
    from ops.beads.importer import import_beads
    from ops.beads.prepare import ImportOptions

    options = ImportOptions(file=file, product=product, dry_run=dry_run,
                            skip_invalid=skip_invalid, include_ephemeral=include_ephemeral,
                            via=via.value, api_url=api_url, email=email)
    result = import_beads(settings(), options, reporter(as_json))
    if as_json:
        print_json(result)
