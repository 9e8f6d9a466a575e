"""The `tasklets-db` command line: error handling in one place, commands in sibling modules.

Each command imports the module that does its work when it runs, so start-up (paid by every
command, `reset` included) does not load the code of all the others.
"""

from __future__ import annotations

import sys
import traceback

from rich.console import Console

from ops.cli import (
    anonymize_cmds,  # noqa: F401
    api_cmds,  # noqa: F401
    backup_cmds,  # noqa: F401
    beads_cmds,  # noqa: F401
    local_cmds,  # noqa: F401
    restore_cmds,  # noqa: F401
    schedule_cmds,  # noqa: F401
    schema_cmds,  # noqa: F401  (registers commands)
    seed_cmds,  # noqa: F401
    testdb_cmds,  # noqa: F401
)
from ops.cli.app import app, state
from ops.core.errors import OpsError
from ops.core.extras import missing_extra
from ops.core.output import host_paths, record_invocation

__all__ = ["app", "main"]

INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 ok, 1 failure, 2 usage error; one line per expected error."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    record_invocation(sys.argv[1:] if argv is None else argv)
    try:
        _run(err, argv)
    finally:
        record_invocation([])  # hints of later calls in this process are not about this run


def _run(err: Console, argv: list[str] | None) -> None:
    try:
        # Standalone mode handles usage errors (exit 2) and --help; our errors propagate here.
        app(args=argv, prog_name="tasklets-db")
    except OpsError as exc:
        if state.debug:  # what led to it (the driver's error, a seed's exception...), even
            cause = exc.__cause__ or exc.__context__  # where the message replaced it
            traceback.print_exception(cause if cause is not None else exc)
        err.print(host_paths(f"❌ {exc.message}"), markup=False)
        if exc.hint:
            err.print(host_paths(f"💡 {exc.hint}"), markup=False)
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:  # Typer turns Ctrl-C into a silent exit 130
            err.print("❌ Interrupted; any open transaction was rolled back, nothing was "
                      "changed.", markup=False)
        raise
    except KeyboardInterrupt:  # Ctrl-C outside Typer's own handling
        err.print("❌ Interrupted; any open transaction was rolled back, nothing was changed.",
                  markup=False)
        sys.exit(INTERRUPTED)
    except Exception as exc:  # a driver error, a missing extra, or a bug: one line
        if state.debug:
            traceback.print_exc()
        if (missing := missing_extra(exc)) is not None:
            err.print(f"❌ {missing.message}", markup=False)
            err.print(f"💡 {missing.hint}", markup=False)
        elif _is_driver_error(exc):
            from ops.core.db import first_line

            err.print(host_paths(f"❌ database error: {first_line(exc)}"), markup=False)
        elif not state.debug:
            err.print(host_paths(f"❌ internal error: {exc.__class__.__name__}: {exc} "
                                 "(re-run with --debug for the traceback)"), markup=False)
        sys.exit(1)


def _is_driver_error(exc: Exception) -> bool:
    """A psycopg.Error, without importing psycopg (0.1-0.2 s of every start-up, `--help`
    included): a process that never loaded the driver cannot have raised its errors."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
