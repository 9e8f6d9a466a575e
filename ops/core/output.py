"""Output: the seed's emoji-style lines, progress bars, and JSON for scripts.

Work functions receive a Reporter and call `line` / `progress`; they never print. With
--json the CLI hands them a quiet Reporter and prints the returned result as JSON instead.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.console import Console

from ops.core.masking import mask_secrets


class Advance(Protocol):
    def __call__(self, n: int = 1) -> None: ...


class Reporter:
    """Where work functions send their human-readable progress."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.quiet = quiet

    def line(self, text: str = "") -> None:
        if not self.quiet:
            self.console.print(host_paths(mask_secrets(text)), markup=False)

    def warn(self, text: str) -> None:
        if not self.quiet:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                host_paths(mask_secrets(text)), markup=False)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Advance]:
        """A progress bar on a terminal; nothing (cheap no-op) otherwise."""
        if self.quiet or not self.console.is_terminal:
            yield no_progress
            return
        # Imported here: only a terminal shows a bar, and rich.progress is ~10 ms of start-up.
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                bar.advance(task, n)

            yield advance


def quiet_library_logs(*names: str) -> None:
    """Keep these libraries' log records off stderr: they only repeat, in their own words, a
    failure our one line reports (psycopg's "error ignored terminating <psycopg.Copy [BAD]>"
    when the server goes away mid-COPY, urllib3's retries), and without a handler Python
    prints them. Called where each library is first used, which has loaded `logging` already
    (importing it at start-up would cost every command, `--help` included)."""
    import logging

    for name in names:
        log = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())


def no_progress(n: int = 1) -> None:
    return None


SILENT = Reporter(quiet=True)


def _jsonable(value: Any) -> Any:
    """What orjson does not know itself: exact decimals, paths, sets, pydantic models."""
    if isinstance(value, Decimal):
        return str(value)  # as text: a float would lose digits
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "as_json"):  # our own values that know how they are shown
        return value.as_json()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any, *, indent: bool = False) -> str:
    """JSON text for results, API payloads and the sync's row sets: one encoder everywhere
    (dataclasses, datetimes as ISO 8601, Decimal digits kept, UTF-8 unescaped)."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=_jsonable, option=option).decode()


def print_json(value: Any, *, indent: bool = True) -> None:
    """A result as JSON on stdout (`--json`, the scheduler's JSON log), secrets masked."""
    sys.stdout.write(mask_secrets(to_json(value, indent=indent)) + "\n")
    sys.stdout.flush()


# `make db-*` passes these, so hints name what the user typed rather than the CLI underneath.
MAKE_TARGET_ENV = "TASKLETS_MAKE_TARGET"
RUN_MODE_ENV = "TASKLETS_RUN"
# In a container: what the mounts are on the host, as CONTAINER=HOST pairs joined by ":"
# (/restore/x.json=x.json:/backups=./backups), so messages show the paths the user gave.
HOST_PATHS_ENV = "TASKLETS_HOST_PATHS"

# CLI command -> (make target, {flag: make variable}, make variable for the FILE argument)
_MAKE_COMMANDS: dict[tuple[str, ...], tuple[str, dict[str, str], str | None]] = {
    ("push",): ("db-push", {}, None),
    ("generate",): ("db-generate", {"-m": "m"}, None),
    ("check",): ("db-check", {}, None),
    ("status",): ("db-status", {}, None),
    ("backup",): ("db-backup", {}, None),
    ("backups", "check"): ("db-backups-check", {}, None),
    ("backups",): ("db-backups", {}, None),
    ("verify",): ("db-verify", {}, "BACKUP"),
    ("prune",): ("db-prune", {}, None),
    ("reset",): ("db-reset", {"--confirm": "CONFIRM=yes"}, None),
    ("restore",): ("db-restore", {"--at": "AT"}, "BACKUP"),
    ("copy",): ("db-copy", {}, None),
    ("compare",): ("db-compare", {}, "BACKUP"),
    ("anonymize", "check"): ("db-anonymize-check", {}, None),
    ("seed", "lookups"): ("db-seed-lookups", {}, None),
    ("seed", "sample"): ("db-seed-sample", {}, None),
    ("seed", "run"): ("db-seed-custom", {}, "NAME"),
    ("seed", "list"): ("db-seed-list", {}, None),
    ("seed",): ("db-seed", {}, None),
    ("import", "beads"): ("db-import-beads", {"--file": "BEADS_FILE", "--api-url": "API_URL"},
                          None),
    ("fresh",): ("db-fresh", {"--from": "FROM"}, None),
    ("serve",): ("dev", {"--port": "API_PORT"}, None),
}
# Options of the app itself, given before the command (make passes --env-file).
_GLOBAL_OPTIONS = {"--env-file": 1, "--debug": 0}

_invocation: list[str] = []  # the command line of this run, from the command on


def via_make() -> bool:
    return bool(os.environ.get(MAKE_TARGET_ENV))


def record_invocation(argv: list[str]) -> None:
    """Remember this run's command line (without the app's own options), so that a hint can
    say how to run it again with one more option."""
    words = list(argv)
    while words and words[0] in _GLOBAL_OPTIONS:
        del words[:1 + _GLOBAL_OPTIONS[words[0]]]
    _invocation[:] = [_retypeable(word) for word in words]


# A word of the command line that may hold a credential (a database URL with a user, a storage
# URL with a signature or token, a key=value DSN's password) is never echoed back in a hint.
_SECRET_WORD = re.compile(r"://[^/?#\s]*@|password|passwd|sig=|signature|token|secret|key=",
                          re.IGNORECASE)


def _retypeable(word: str) -> str:
    if _SECRET_WORD.search(word):
        return "URL" if "://" in word else "DSN"
    return host_paths(word)


def suggest(cli: str) -> str:
    """How to run `tasklets-db <cli>` the way this run was started, in backticks.

    Run through make (which sets TASKLETS_MAKE_TARGET), that is the make target with its
    variables (`make db-reset CONFIRM=yes RUN=local`); otherwise the CLI line itself.
    """
    if not via_make():
        return f"`tasklets-db {cli}`"
    words = shlex.split(cli)
    for prefix, (target, flags, file_var) in _MAKE_COMMANDS.items():
        if tuple(words[:len(prefix)]) != prefix:
            continue
        rest = words[len(prefix):]
        variables: list[str] = []
        extra: list[str] = []
        while rest:
            word = rest.pop(0)
            if word in flags:
                name = flags[word]
                variables.append(name if "=" in name else f"{name}={shlex.quote(rest.pop(0))}")
            elif not word.startswith("-") and file_var and not extra:
                variables.append(f"{file_var}={shlex.quote(word)}")
            else:
                extra.append(word)
        if target == "db-import-beads" and "api" in extra and "--via" in extra:
            target = "db-import-beads-api"
            extra = [w for w in extra if w not in ("--via", "api")]
        if extra:
            variables.append(f"ARGS={shlex.quote(' '.join(extra))}")
        return f"`{' '.join(['make', target, *variables, *_run_mode()])}`"
    return f"`tasklets-db {cli}`"


def suggest_flag(flag: str) -> str:
    """How to run the command just run again with `flag` (`--yes`, `--rename NEW`): through
    make, that make line with the flag in ARGS (a bare `--yes` means nothing to make)."""
    if not _invocation:
        return f"`ARGS={shlex.quote(flag)}`" if via_make() else f"`{flag}`"
    return suggest(shlex.join([*_invocation, *shlex.split(flag)]))


def host_paths(text: str) -> str:
    """`text` with the container's mount points (/restore/x.json, /backups, /app/migrations)
    replaced by the host paths they mount; unchanged outside a container started by make."""
    mounts = dict(pair.partition("=")[::2] for pair in
                  os.environ.get(HOST_PATHS_ENV, "").split(":") if pair.startswith("/"))
    mounts = {inside: outside for inside, outside in mounts.items() if outside}
    if not mounts or not any(inside in text for inside in mounts):
        return text
    # One pass, longest mount first, whole path components only (not /backupsX or a/backups).
    insides = "|".join(re.escape(inside) for inside in sorted(mounts, key=len, reverse=True))
    return re.sub(rf"(?<![\w./-])(?:{insides})(?![\w.-])",
                  lambda found: mounts[found.group()], text)


def run_mode() -> str | None:
    """docker or local when run through make, else None."""
    return os.environ.get(RUN_MODE_ENV) if via_make() else None


def _run_mode() -> list[str]:
    return ["RUN=local"] if run_mode() == "local" else []


def human_size(n_bytes: int) -> str:
    """245.32 KB style, as the seed prints file sizes."""
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.2f} GB"
