"""Fault injection helpers: kill a command with SIGKILL at a chosen point of its own progress,
restart the server from inside a command, and fingerprint the database."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg

from ops.core.config import PROJECT_ROOT
from ops.core.output import Reporter
from support.restore import table_hashes

# Runs CALL (Python using `settings` and the reporter `R`) in a child process whose reporter
# SIGKILLs the process at TRIGGER: "line:<prefix>" when a line starting with prefix is
# reported, or "progress:<description prefix>:<n>" on the n-th advance of that progress bar.
KILLER = r"""
import os, signal, sys
from contextlib import contextmanager
from pathlib import Path
from ops.core.config import Settings
from ops.core.output import Reporter

url, backup_dir, trigger, call = sys.argv[1:5]
settings = Settings(database_url=url, backup_dir=Path(backup_dir), app_env="test")

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

class KillAt(Reporter):
    def line(self, text=""):
        print(text, flush=True)
        if trigger.startswith("line:") and text.startswith(trigger[5:]):
            die()

    @contextmanager
    def progress(self, description, total):
        seen = 0
        def advance(n=1):
            nonlocal seen
            seen += 1
            if trigger.startswith("progress:"):
                prefix, nth = trigger[9:].rsplit(":", 1)
                if description.startswith(prefix) and seen >= int(nth):
                    die()
        yield advance

R = KillAt(quiet=False)
exec(call)
print("FINISHED", flush=True)
"""


def run_killed_at(url: str, backup_dir: str, trigger: str, call: str,
                  timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `call` in a child that kills itself at `trigger`; assert it really was killed."""
    run = subprocess.run([sys.executable, "-c", KILLER, url, backup_dir, trigger, call],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout)
    assert run.returncode == -signal.SIGKILL, (
        f"expected SIGKILL at {trigger!r}, got exit {run.returncode}\n{run.stdout}\n{run.stderr}")
    assert "FINISHED" not in run.stdout
    return run


def check_unchanged(ledger: list[dict], case: str, before: dict, after: dict) -> None:
    """Record the fault in the session's ledger and assert the database is exactly as before
    (no row lost)."""
    lost = sum(max(0, before[t][0] - after.get(t, (0, ""))[0]) for t in before)
    ledger.append({"case": case, "unchanged": after == before, "rows_lost": lost})
    assert after == before, f"{case}: database changed"


def fingerprint(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return table_hashes(conn)


def wait_for_tool_backends_to_end(url: str) -> None:
    """A killed client's server backend rolls back and exits shortly after; wait for it."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(300):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'tasklets-db'").fetchone()[0]
            if not busy:
                return
            time.sleep(0.1)
    raise AssertionError("the killed command's server backend did not go away")


class ActAt(Reporter):
    """A quiet reporter that runs `action` once, when a line or progress step matches."""

    def __init__(self, action, *, line: str | None = None, progress: str | None = None,
                 nth: int = 1) -> None:
        super().__init__(quiet=True)
        self.action, self.line_prefix, self.progress_prefix, self.nth = (action, line, progress,
                                                                         nth)
        self.fired = False

    def _fire(self) -> None:
        if not self.fired:
            self.fired = True
            self.action()

    def line(self, text: str = "") -> None:
        if self.line_prefix and text.startswith(self.line_prefix):
            self._fire()

    @contextmanager
    def progress(self, description: str, total: int | None):
        seen = 0

        def advance(n: int = 1) -> None:
            nonlocal seen
            seen += 1
            if (self.progress_prefix and description.startswith(self.progress_prefix)
                    and seen >= self.nth):
                self._fire()

        yield advance


class Lines(Reporter):
    """Keeps the lines a work function reports, for a test to read."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)
