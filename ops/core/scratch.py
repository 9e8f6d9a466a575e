"""Private scratch directories: where a run keeps temp files that may hold row data.

Each run gets one directory of its own (0700, `.tasklets-scratch-PID-XXXXXXXX`) holding a lock
file the run keeps locked while it lives. The directory goes at the end of the run, whatever
the ending; a run killed with SIGKILL cannot clean up, so every new scratch directory first
removes the leftovers of dead runs in the same place: a directory whose lock nobody holds (the
kernel drops a dead process's locks) and whose run is gone (its pid, or, as a pid may live on in
another container, its age: a live run locks its directory within microseconds).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = ".tasklets-scratch-"
_LOCK = ".lock"
_SETTLED_SECONDS = 60  # older than this and unlocked: not a run that is just starting


@contextlib.contextmanager
def scratch_dir(base: Path | None = None) -> Iterator[Path]:
    """A new private directory under `base` (default: the system's temp directory), removed
    with everything in it when the block ends."""
    base = base or Path(tempfile.gettempdir())
    remove_leftovers(base)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))  # mode 0700
    lock = os.open(path / _LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def remove_leftovers(base: Path) -> list[Path]:
    """Remove the scratch directories of dead runs under `base` (only ours: this user's, of
    our naming); returns those removed."""
    removed = []
    with contextlib.suppress(OSError):
        for path in base.glob(f"{PREFIX}*"):
            if _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.geteuid():
        return False
    with contextlib.suppress(FileNotFoundError):  # no lock file: created just now, or died
        lock = os.open(path / _LOCK, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its run is alive
            return False
        finally:
            os.close(lock)  # closing drops the lock we may have taken
    settled = time.time() - info.st_mtime > _SETTLED_SECONDS
    return settled or not _pid_alive(path.name.removeprefix(PREFIX).split("-", 1)[0])


def _pid_alive(pid: str) -> bool:
    if not pid.isdigit():
        return True  # not ours to judge
    try:
        os.kill(int(pid), 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
