"""The file side of a backup: a private temp file, optional gzip, fsync, then one atomic link.

Until `commit()` publishes it, the data lives in a temp file of its own (hidden, unique per
run, created exclusively, mode 0600, ending in `.partial` - a name `list_backups` never
matches), so a backup killed at any point leaves nothing that `backups` or `restore latest`
could take for a good one, and two runs aimed at one name never share a temp file. Publishing
never overwrites: a file that appeared under the name meanwhile (another run's) is kept, and
this run takes the next free name or stops with one line. Any exception removes the temp file.
"""

from __future__ import annotations

import errno
import gzip
import os
import queue
import shutil
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ops.backup.files import create_private, private_temp
from ops.core.errors import OpsError

# Level 1: the compressed backup is bound by zlib on the client; higher levels cost far more
# time than the few percent of size they save on JSON.
GZIP_LEVEL = 1
_FILE_BUFFER = 1 << 20
_QUEUED_WRITES = 16  # ~16 MB in flight at most: memory stays flat
_NEW_MEMBER = object()
_DONE = object()


class _Splice:
    def __init__(self, path: Path) -> None:
        self.path = path


class BackupWriter:
    """Write bytes to `target` atomically; `new_member()` starts a fresh gzip member.

    Compression runs on a thread of its own (zlib releases the GIL), so it overlaps with
    reading the next rows from PostgreSQL instead of adding to it. `next_name` gives the
    name to try when `target` exists at commit time (default-named backups); without it an
    existing target is an error.
    """

    def __init__(self, target: Path, *, compress: bool,
                 next_name: Callable[[Path], Path] | None = None) -> None:
        self.target = target
        self.next_name = next_name
        self.temp, fd = private_temp(target)
        self.compress = compress
        self._raw = os.fdopen(fd, "wb", buffering=_FILE_BUFFER)
        self._gz: gzip.GzipFile | None = None
        self._queue: queue.Queue[object] | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        if compress:
            self._gz = self._open_member()
            self._queue = queue.Queue(maxsize=_QUEUED_WRITES)
            self._thread = threading.Thread(target=self._compress_loop, daemon=True,
                                            name="backup-gzip")
            self._thread.start()

    def _open_member(self) -> gzip.GzipFile:
        # mtime=0 and no file name: the same data gives the same bytes.
        return gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                             compresslevel=GZIP_LEVEL, mtime=0)

    def _compress_loop(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not _DONE:
            if self._failure is not None:
                continue  # keep draining so the producer never blocks
            try:
                assert self._gz is not None
                if item is _NEW_MEMBER:
                    self._gz.close()  # writes the member's trailer; the raw file stays open
                    self._gz = self._open_member()
                elif isinstance(item, _Splice):  # a finished gzip member, copied as it is
                    self._gz.close()
                    _append_file(self._raw, item.path)
                    self._gz = self._open_member()
                else:
                    self._gz.write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # handed to the producer on its next call
                self._failure = exc

    def _put(self, item: object) -> None:
        assert self._queue is not None
        if self._failure is not None:
            raise self._failure
        self._queue.put(item)

    def _finish_thread(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def write(self, data: bytes) -> None:
        if self._queue is not None:
            self._put(data)
        else:
            self._raw.write(data)

    def splice(self, path: Path) -> None:
        """Append, then delete, a part written by the parallel backup (a whole gzip member
        if compressed); with compression this happens on the writer's thread, in order."""
        if self._queue is not None:
            self._put(_Splice(path))
        else:
            _append_file(self._raw, path)

    def new_member(self) -> None:
        """End the current gzip member and start another (no-op for plain files)."""
        if self._queue is not None:
            self._put(_NEW_MEMBER)

    def part(self, index: int) -> Path:
        """A temp file for the parallel backup's part `index`: private, beside the temp."""
        path = self.temp.with_name(f"{self.temp.name.removesuffix('.partial')}.part{index}"
                                   ".partial")
        os.close(create_private(path))
        return path

    def parts(self) -> list[Path]:
        return list(self.temp.parent.glob(
            f"{self.temp.name.removesuffix('.partial')}.part*.partial"))

    def commit(self) -> int:
        """Flush, fsync, publish under `target` (never over another file), fsync the
        directory; returns the file size. `target` is the name finally used."""
        self._finish_thread()
        if self._failure is not None:
            raise self._failure
        if self._gz is not None:
            self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self.target = publish(self.temp, self.target, self.next_name)
        _fsync_directory(self.target.parent)
        return self.target.stat().st_size

    def discard(self) -> None:
        """Close and remove the temp file, swallowing errors (we are already failing)."""
        if self._failure is None:
            self._failure = OSError("backup discarded")  # the thread stops writing
        self._finish_thread()
        for closer in (self._gz, self._raw):
            try:
                if closer is not None:
                    closer.close()
            except (OSError, zlib.error, ValueError):
                pass
        self.temp.unlink(missing_ok=True)
        for part in self.parts():
            part.unlink(missing_ok=True)

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.discard()


_NAME_ATTEMPTS = 1000


def publish(temp: Path, target: Path, next_name: Callable[[Path], Path] | None) -> Path:
    """Give `temp` the name `target` without ever replacing a file, and remove `temp`.

    A hard link fails when the name exists, which a rename would silently overwrite; where
    the filesystem has no hard links, a rename after an existence check is the fallback.
    """
    for _ in range(_NAME_ATTEMPTS):
        try:
            _link_or_rename(temp, target)
            return target
        except FileExistsError:
            if next_name is None:
                raise OpsError(f"{target} already exists (written meanwhile by another run?); "
                               "it was left as it is and this backup was discarded",
                               hint="Choose another --output name, or remove that file "
                               "first.") from None
            target = next_name(target)
    raise OpsError(f"no free backup name next to {target}")


def _link_or_rename(temp: Path, target: Path) -> None:
    try:
        os.link(temp, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                             errno.EMLINK):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(temp, target)
        return
    temp.unlink()


def _append_file(out: BinaryIO, path: Path) -> None:
    out.flush()
    with path.open("rb") as part:
        shutil.copyfileobj(part, out, _FILE_BUFFER)
    path.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX needs the directory fsynced too)."""
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
