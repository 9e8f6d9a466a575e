"""`tasklets-db capture` (the change capture service), `capture status`, `capture stop`."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.cli.app import JsonOption, app, reporter, settings
from ops.core.errors import OpsError, UsageError
from ops.core.output import human_size, print_json
from ops.core.signals import on_sigterm

capture_app = typer.Typer(no_args_is_help=False)
app.add_typer(capture_app, name="capture")

SlotOption = Annotated[str | None, typer.Option(
    "--slot", show_default=False, help="The logical replication slot (and publication) "
    "capture reads through; one capture per slot. Default: CAPTURE_SLOT, else "
    "tasklets_capture.")]


@capture_app.callback(invoke_without_command=True)
def capture(
    ctx: typer.Context,
    flush_every: Annotated[str, typer.Option(
        "--flush-every", metavar="INTERVAL", help="Store a change segment this often "
        "(5s, 1m): the recovery point, i.e. about the most a loss of the database server "
        "can lose while capture keeps up.")] = "5s",
    flush_mb: Annotated[int, typer.Option(
        "--flush-mb", min=1, help="Also store a segment once this many MB of changes are "
        "waiting.")] = 16,
    once: Annotated[bool, typer.Option(
        "--once", help="Store what the slot holds now, then exit (cron, tests).")] = False,
    slot: SlotOption = None,
    read: Annotated[str, typer.Option(
        "--read", metavar="stream|sql", help="How to read the slot: stream (a replication "
        "connection: the server decodes each change once; falls back to sql where one cannot "
        "be had, e.g. through a pooler) or sql (SQL functions over an ordinary "
        "connection).")] = "stream",
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", help="Serve Prometheus metrics on this port (0: any free one).")]
    = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host", help="Address the metrics listen on (0.0.0.0 in a container).")]
    = "127.0.0.1",
) -> None:
    """Capture every committed change of the app's tables into change segments beside the
    backups (BACKUP_DIR), for `restore --at`. Runs until stopped (SIGTERM, Ctrl-C)."""
    if ctx.invoked_subcommand is not None:
        return
    from ops.backup.archive import Archive
    from ops.backup.prune import parse_age
    from ops.capture.metrics import CaptureMetrics
    from ops.capture.service import MB, Capture, CaptureOptions
    from ops.capture.slot import configured_slot

    interval = parse_age(flush_every).total_seconds()
    if interval <= 0:
        raise UsageError(f"--flush-every {flush_every}: give a positive interval (5s, 1m)")
    if read not in ("stream", "sql"):
        raise UsageError(f"--read {read}: give stream or sql")
    cfg = settings()
    slot = configured_slot(slot)
    out = reporter()
    options = CaptureOptions(slot=slot, flush_every=interval, flush_bytes=flush_mb * MB,
                             once=once, read=read)
    service = Capture(cfg, Archive.from_settings(cfg), options, report=out)
    service.open()
    metrics = CaptureMetrics(service.progress)
    if metrics_port is not None:
        port = metrics.serve(metrics_host, metrics_port)
        out.line(f"📈 metrics on http://{metrics_host}:{port}/metrics")
    try:
        with on_sigterm(lambda *_: service.stop_event.set()):
            out.line(f"👀 capturing changes through slot {slot} into {service.archive} "
                     f"(a segment every {flush_every} or {flush_mb} MB, read "
                     f"{'streamed' if service.stream is not None else 'over SQL'})")
            done = service.run()
    finally:
        metrics.stop()
    out.line(f"✅ capture stopped: {done.segments} segment(s), {done.transactions} "
             f"transaction(s), {human_size(done.bytes)} stored")


@capture_app.command("status")
def status(slot: SlotOption = None, as_json: JsonOption = False) -> None:
    """The slot, whether a capture runs on it, the WAL it holds back and the capture lag."""
    from ops.backup.archive import Archive
    from ops.capture.slot import configured_slot
    from ops.capture.status import capture_status
    from ops.core.db import connection

    cfg = settings()
    slot = configured_slot(slot)
    with connection(cfg, autocommit=True) as conn:
        found = capture_status(conn, Archive.from_settings(cfg), slot, slot)
    if as_json:
        print_json(found)
        return
    out = reporter()
    if not found.exists:
        raise OpsError(f"no replication slot {slot}: changes are not being captured",
                       hint="Start capture: make capture-up (or tasklets-db capture).")
    running = f"running (session {found.pid})" if found.running else "NOT running"
    out.line(f"🔌 slot {slot}: {running}, confirmed {found.confirmed_lsn}")
    retained = human_size(found.retained_wal_bytes or 0)
    lag = "not known yet" if found.lag_seconds is None else f"{found.lag_seconds:.1f}s"
    out.line(f"🗄️  retained WAL {retained} ({found.wal_status}); lag {lag}")
    out.line(f"💾 {found.segments} segment(s); last stored {found.last_flush or 'never'}")


@capture_app.command("stop")
def stop(
    drop_slot: Annotated[bool, typer.Option(
        "--drop-slot", help="Drop the replication slot and publication (the server stops "
        "keeping WAL for capture; changes from now on are not captured).")] = False,
    slot: SlotOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove what capture set up on the database (stop the service itself first:
    make capture-down)."""
    if not drop_slot:
        raise UsageError("capture stop changes nothing without --drop-slot",
                         hint="Stop the service with make capture-down; add --drop-slot to "
                         "also remove its slot and publication.")
    from ops.capture.slot import configured_slot, drop
    from ops.core.db import connection

    cfg = settings()
    slot = configured_slot(slot)
    with connection(cfg, autocommit=True) as conn:
        dropped = drop(conn, slot, slot)
    if as_json:
        print_json({"dropped": dropped})
        return
    reporter().line(f"🧹 dropped {', '.join(dropped)}" if dropped
                    else f"nothing to drop: no slot or publication {slot}")
