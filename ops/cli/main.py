"""The `tasklets-db` command line: error handling in one place, commands in sibling modules.

Each command imports the module that does its work when it runs, so start-up (paid by every
command, `reset` included) does not load the code of all the others.
"""

from __future__ import annotations

import signal
import sys
import traceback
from types import FrameType

from rich.console import Console

from ops.cli import (
    anonymize_cmds,  # noqa: F401
    api_cmds,  # noqa: F401
    backup_cmds,  # noqa: F401
    beads_cmds,  # noqa: F401
    capture_cmds,  # noqa: F401
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
from ops.core.output import Reporter, record_invocation
from ops.core.signals import on_sigterm

__all__ = ["app", "main"]

INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT
TERMINATED = 143  # ... and by SIGTERM (what `docker stop` and Kubernetes send)
STOPPED = "any open transaction was rolled back, nothing was changed."


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM: a KeyboardInterrupt, so every layer cleans up exactly as for
    Ctrl-C (transactions rolled back, partial files and the safety backup removed)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def _print_error(err: Console, message: str, hint: str | None = None) -> None:
    """The one place an error reaches the terminal: one line (and the hint), secrets masked,
    host paths in place of a container's mounts."""
    out = Reporter(err)
    out.line(f"❌ {message}")
    if hint:
        out.line(f"💡 {hint}")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 ok, 1 failure, 2 usage error; one line per expected error."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    record_invocation(sys.argv[1:] if argv is None else argv)
    with on_sigterm(_on_sigterm):
        _run(err, argv)


def _run(err: Console, argv: list[str] | None) -> None:
    try:
        # Standalone mode handles usage errors (exit 2) and --help; our errors propagate here.
        app(args=argv, prog_name="tasklets-db")
    except OpsError as exc:
        if state.debug:  # what led to it (the driver's error, a seed's exception...), even
            cause = exc.__cause__ or exc.__context__  # where the message replaced it
            traceback.print_exception(cause if cause is not None else exc)
        _print_error(err, exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:  # Typer turns Ctrl-C (and SIGTERM) into a silent 130
            _stopped(err, _cause(exc))
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C outside Typer's own handling
        _stopped(err, exc)
    except Exception as exc:  # a driver error, a missing extra, or a bug: one line
        if state.debug:
            traceback.print_exc()
        if (missing := missing_extra(exc)) is not None:
            _print_error(err, missing.message, missing.hint)
        elif _is_driver_error(exc):
            from ops.core.db import first_line

            _print_error(err, f"database error: {first_line(exc)}")
        elif not state.debug:
            _print_error(err, f"internal error: {exc.__class__.__name__}: {exc} "
                         "(re-run with --debug for the traceback)")
        sys.exit(1)
    finally:
        record_invocation([])  # hints of later calls in this process are not about this run


def _cause(exc: BaseException) -> BaseException | None:
    """The interrupt behind Typer's exit 130 (it raises its Exit `from` the interrupt)."""
    seen = exc.__context__
    while seen is not None and not isinstance(seen, KeyboardInterrupt):
        seen = seen.__cause__ or seen.__context__
    return seen


def _stopped(err: Console, interrupt: BaseException | None) -> None:
    if isinstance(interrupt, Terminated):
        _print_error(err, f"Terminated (SIGTERM); {STOPPED}")
        sys.exit(TERMINATED)
    _print_error(err, f"Interrupted; {STOPPED}")
    sys.exit(INTERRUPTED)


def _is_driver_error(exc: Exception) -> bool:
    """A psycopg.Error, without importing psycopg (0.1-0.2 s of every start-up, `--help`
    included): a process that never loaded the driver cannot have raised its errors."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
