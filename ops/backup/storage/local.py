"""Backups in a local directory: private temp files published by hard link."""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ops.backup.storage.interface import (
    PART_SIZE,
    IncompleteUpload,
    ObjectInfo,
    Store,
    Writer,
    check_name,
    exists_error,
)
from ops.core.defaults import DEFAULT_JOBS
from ops.core.errors import OpsError

_PARTIAL_SUFFIX = ".partial"
# Our temp files carry our own mark and the writing process's id:
# `.NAME.tasklets-PID.XXXXXXXX.partial` (mkstemp's 8 characters), NAME one we write. Only
# those are ever removed as a killed run's: a hidden .partial without the mark (another
# program's, or a copy being made) is not ours, whatever it is named like.
_OWN_MARK = "tasklets-"
_LOCAL_TEMP = re.compile(r"^\.(?P<name>(?:backup-|pre-restore-)[^/]+)\." + _OWN_MARK
                         + r"\d+\.[A-Za-z0-9_]{8}\.partial$")
PRIVATE_DIR = 0o700

# --- Local directories -------------------------------------------------------------------------


class LocalStore(Store):
    """A directory: files published by hard link from private temp files, 0700 directories."""

    default_jobs = DEFAULT_JOBS  # part files are cheap next to the data

    def __init__(self, directory: Path) -> None:
        super().__init__(str(directory))
        self.directory = directory
        self.local_directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def parent_and_name(self) -> tuple[Store, str]:
        return LocalStore(self.directory.parent), check_name(self.directory.name)

    def list(self) -> list[ObjectInfo]:
        if not self.directory.is_dir():
            return []
        found = []
        root = self.directory.resolve()
        with _local_errors(self, "listing"):
            for path in self.directory.iterdir():
                if path.name.startswith(".") or not path.is_file():
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    continue  # a link leading outside the directory is not one of its objects
                stat = path.stat()
                found.append(ObjectInfo(path.name, stat.st_size,
                                        datetime.fromtimestamp(stat.st_mtime, UTC)))
        return sorted(found, key=lambda o: o.name)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open_reader(self, name: str) -> BinaryIO:
        with _local_errors(self, "opening", name):
            return self._path(name).open("rb")

    def read_tail(self, name: str, length: int, *, size: int | None = None) -> bytes:
        with _local_errors(self, "reading", name), self._path(name).open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - length))
            return fh.read(length)

    def open_writer(self, name: str, *, part_size: int = PART_SIZE) -> Writer:
        target = self._path(name)
        _ensure_private_dir(self.directory)
        return _LocalWriter(self, target)

    def delete(self, name: str) -> None:
        with _local_errors(self, "deleting", name):
            self._path(name).unlink(missing_ok=True)

    def incomplete_uploads(self) -> builtins.list[IncompleteUpload]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(".*" + _PARTIAL_SUFFIX):
            match = _LOCAL_TEMP.match(path.name)
            if match is None:  # not of our naming: another program's, never touched
                continue
            with contextlib.suppress(FileNotFoundError):  # finished meanwhile
                # mtime, not creation: a temp file still being written is not stale; the
                # server's clock and ours are one here
                moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                found.append(IncompleteUpload(match["name"], moment, str(path), moment))
        return sorted(found, key=lambda u: u.started)

    def abort_upload(self, upload: IncompleteUpload) -> None:
        with _local_errors(self, "removing the temp file of", upload.name):
            Path(upload.handle).unlink(missing_ok=True)


@contextlib.contextmanager
def _local_errors(store: LocalStore, doing: str, name: str | None = None) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        if name is None:
            raise OpsError(f"{store} does not exist") from None
        raise OpsError(f"{store.describe(name)} does not exist",
                       hint="`backups` lists what there is.") from None
    except OSError as exc:
        what = store.describe(name) if name else str(store)
        raise OpsError(f"{doing} {what} failed: {exc.strerror or exc}") from None


def _ensure_private_dir(directory: Path) -> None:
    """Create the directory (owner-only) when only its last level is missing."""
    if directory.is_dir():
        return
    if directory.exists():
        raise OpsError(f"backup directory {directory} is not a directory",
                       hint="Point BACKUP_DIR (or --output) at a directory.")
    if not directory.parent.is_dir():
        raise OpsError(f"backup directory {directory} does not exist (nor its parent "
                       f"{directory.parent})",
                       hint="Create it, or set BACKUP_DIR to an existing directory.")
    try:
        directory.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:  # created concurrently
        pass
    except OSError as exc:
        raise OpsError(f"cannot create backup directory {directory}: {exc.strerror}",
                       hint="Check the permissions of its parent, or set BACKUP_DIR.") from None


class _LocalWriter(Writer):
    """A unique 0600 temp file created exclusively beside the target (mkstemp), fsynced and
    hard-linked to the target at commit."""

    def __init__(self, store: LocalStore, target: Path) -> None:
        super().__init__(store, target.name)
        self.target = target
        with _local_errors(store, "creating a temp file in"):
            fd, temp = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.{_OWN_MARK}{os.getpid()}.",
                suffix=_PARTIAL_SUFFIX)
        self.temp = Path(temp)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise ValueError("write to a finished writer")
        try:
            written = self._file.write(data)
        except OSError as exc:
            self.abort()
            raise OpsError(f"writing {self.store.describe(self.name)} failed: "
                           f"{exc.strerror or exc}",
                           hint=f"Check the free space and permissions of {self.store}.") from None
        self.size += written
        return written

    def commit(self) -> int:
        return self.commit_first_free(iter(()))

    def commit_first_free(self, names: Iterator[str]) -> int:
        if self._done:
            raise ValueError("commit of a finished writer")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            while True:
                try:
                    _link_no_replace(self.temp, self.target)
                    break
                except FileExistsError:
                    name = next(names, None)
                    if name is None:
                        raise
                    self.name, self.target = name, self.target.with_name(check_name(name))
        except FileExistsError:
            self.abort()
            raise exists_error(self.store, self.name) from None
        except OSError as exc:
            self.abort()
            raise OpsError(f"writing {self.store.describe(self.name)} failed: "
                           f"{exc.strerror or exc}",
                           hint=f"Check the free space and permissions of {self.store}.") from None
        self._done = True
        self.temp.unlink(missing_ok=True)
        _fsync_directory(self.target.parent)
        return self.size

    def abort(self) -> None:
        self._done = True
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.temp.unlink(missing_ok=True)


def _link_no_replace(temp: Path, target: Path) -> None:
    """A hard link fails when the name exists, which a rename would silently overwrite; where
    the filesystem has no hard links, a rename after an existence check is the fallback."""
    try:
        os.link(temp, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                             errno.EMLINK):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(temp, target)


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable (POSIX needs the directory fsynced too)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


