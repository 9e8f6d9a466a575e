"""The Typer app every command module registers on, and the helpers and option types they share
(the one CLI module that defines an option used by more than one command module).

Command modules only parse options, call a work function and print its result: the seed's
emoji lines through a Reporter, or the result as JSON with --json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ops.cli import startup
from ops.core.config import Settings, load_settings
from ops.core.defaults import COMPRESSIONS, DEFAULT_COMPRESSION
from ops.core.errors import UsageError
from ops.core.output import SILENT, Reporter

if TYPE_CHECKING:
    from ops.backup.retention import RetentionPolicy

startup.install()  # before Typer formats any help or usage error

app = typer.Typer(
    name="tasklets-db",
    help="Database lifecycle toolkit for the Tasklets PostgreSQL database: migrate, seed, "
    "back up, reset, restore, import.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class State:
    debug: bool = False
    env_file: str = ".env"


state = State()

JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]
IdentityOption = Annotated[str | None, typer.Option(
    "--identity", show_default=False, help="The age identity file (or ssh private key) that "
    "decrypts encrypted backups. Default: BACKUP_IDENTITY_FILE.")]

CompressOption = Annotated[bool | None, typer.Option(
    "--compress/--no-compress", show_default=False,
    help=f"Write .json.zst ({DEFAULT_COMPRESSION}, level 3: smaller and faster than gzip). "
    "Default: BACKUP_COMPRESS (off).")]
# a functional Enum: its members come from COMPRESSIONS:
Compression = StrEnum("Compression", {name: name for name in COMPRESSIONS})  # type: ignore[misc]
CompressionOption = Annotated[Compression | None, typer.Option(
    "--compression", show_default=False, help="Compress with this one (gzip: .json.gz, as "
    "older versions wrote).")]

PolicyOption = Annotated[Path | None, typer.Option(
    "--policy", help="The anonymization policy. Default: anonymize.toml at the project root.")]

# The metrics and retention options `backup`, `prune` and `schedule` share.
PushgatewayOption = Annotated[str | None, typer.Option(
    "--pushgateway", metavar="URL", help="Push the metrics to this Prometheus Pushgateway "
    "after the run (job tasklets_backup).")]
MetricsFileOption = Annotated[str | None, typer.Option(
    "--metrics-file", metavar="PATH", help="Write the metrics to this node-exporter textfile "
    "(atomically) after the run.")]


def keep_option(rule: str, what: str) -> object:
    return typer.Option(f"--keep-{rule}", min=1, show_default=False, help=f"Keep {what}. "
                        f"Default: BACKUP_KEEP_{rule.upper()}.")


KeepLast = Annotated[int | None, keep_option("last", "the N newest backups")]
KeepDaily = Annotated[int | None, keep_option("daily", "the newest backup of each of the "
                                                       "last N days (UTC)")]
KeepWeekly = Annotated[int | None, keep_option("weekly", "the newest backup of each of the "
                                                         "last N ISO weeks")]
KeepMonthly = Annotated[int | None, keep_option("monthly", "the newest backup of each of the "
                                                           "last N months")]


def retention_policy(cfg: Settings, last: int | None, daily: int | None, weekly: int | None,
                     monthly: int | None) -> RetentionPolicy | None:
    """The --keep-* options given, else the BACKUP_KEEP_* settings; None when neither."""
    from ops.backup.retention import RetentionPolicy

    given = {"last": last, "daily": daily, "weekly": weekly, "monthly": monthly}
    counts = given if any(v is not None for v in given.values()) else cfg.backup_keep
    policy = RetentionPolicy.from_counts(counts)
    return policy or None


def compression_choice(compress: bool | None, compression: Compression | None, cfg: Settings
                       ) -> str | None:
    """What --compress/--no-compress and --compression ask for, else BACKUP_COMPRESS."""
    if compression is not None:
        if compress is False:
            raise UsageError("--compression and --no-compress contradict each other")
        return compression.value
    if compress is None:
        return cfg.backup_compress
    return DEFAULT_COMPRESSION if compress else None


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for unexpected errors.")]
    = False,
    env_file: Annotated[str, typer.Option("--env-file", help="Dotenv file to read settings from.")]
    = ".env",
) -> None:
    state.debug = debug
    state.env_file = env_file


def settings() -> Settings:
    """The settings; with no DATABASE_URL configured and the project-local PostgreSQL of
    `make ... RUN=local` running, its database (what make would use), not POSTGRES_*."""
    from ops.dev.localdb import running_local_url

    local = running_local_url(state.env_file)
    if local is not None:
        os.environ["DATABASE_URL"] = local
    return load_settings(state.env_file)


def reporter(as_json: bool = False) -> Reporter:
    """Quiet under --json so stdout holds only the JSON document."""
    return SILENT if as_json else Reporter()
