"""What every store offers: the `Store` and `Writer` interfaces (see ops.backup.storage.factory
for how a location becomes a store, and the backend modules beside this one).

Every operation streams with bounded memory: writers upload in parts of `PART_SIZE` (a few
parts in flight at most), readers pull the object in chunks, `read_tail` is one range request.
An object appears only when `Writer.commit()` publishes it, and publishing never replaces an
object that exists. Failures surface as one-line `OpsError`s naming the variable to fix.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ops.core.errors import OpsError

# One part of a remote upload: the unit of memory (at most three are held: one filling, one
# queued, one uploading). S3 needs at least 5 MiB per part and allows 10,000 parts; the size
# doubles every 2,000 parts (up to 128 MiB), so objects up to ~500 GB fit while the usual ones
# stay at 8 MiB.
PART_SIZE = 8 << 20


@dataclass(frozen=True)
class ObjectInfo:
    name: str  # relative to the store's prefix
    size: int
    modified: datetime


@dataclass(frozen=True)
class IncompleteUpload:
    """An upload that was started and never committed or aborted (its writer died)."""
    name: str
    started: datetime  # by the server's clock (a file's mtime, S3's Initiated, ...)
    handle: str  # the backend's id: S3 upload id, GCS parts prefix, Azure blob, temp path
    # When this tool started it, by its own record; None: not started by this tool (another
    # program's upload under the same prefix), which is never aborted
    recorded: datetime | None = None


class ObjectExistsError(OpsError):
    """Publishing refused: an object of that name exists (it was left as it is)."""



class Store(ABC):
    """Objects directly under one directory or bucket prefix. `str(store)` is the location,
    safe to print (it never holds a secret)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def __str__(self) -> str:
        return self.location

    def as_json(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def describe(self, name: str) -> str:
        """Where object `name` lives, for messages."""
        return f"{self.location.rstrip('/')}/{name}"

    # What differs between a directory and a bucket, asked instead of the store's class.
    local_directory: Path | None = None  # objects are files in this directory (None: remote)
    default_jobs = 1  # parallel backup streams by default (more spool parts to local files)

    def local_path(self, name: str) -> Path | None:
        """The file of object `name`, when the store is a local directory."""
        return self.local_directory / check_name(name) if self.local_directory else None

    @abstractmethod
    def parent_and_name(self) -> tuple[Store, str]:
        """For a location that names one object (`s3://bucket/dir/NAME`, `/dir/NAME`): the
        store holding it and its name there."""

    @abstractmethod
    def list(self) -> list[ObjectInfo]:
        """Complete objects directly under the prefix, by name; hidden names (temp files and
        upload parts start with a dot) are never objects."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def open_reader(self, name: str) -> BinaryIO:
        """A buffered stream of the object (read(n), readline, iteration); the object must
        exist when this returns. Failures while reading raise OpsError from read()."""

    @abstractmethod
    def read_tail(self, name: str, length: int, *, size: int | None = None) -> bytes:
        """The last `length` bytes (fewer when the object is shorter), in one range request;
        `size` (from `list`) saves a metadata request where the backend needs one."""

    @abstractmethod
    def open_writer(self, name: str, *, part_size: int = PART_SIZE) -> Writer:
        """A writer whose data appears as `name` only at `commit()`; nothing appears when it
        is aborted, or the context is left without a commit."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the object; one that is already gone is not an error."""

    @abstractmethod
    def incomplete_uploads(self) -> builtins.list[IncompleteUpload]:
        """Uploads started and never finished (writers killed or cut off), oldest first."""

    @abstractmethod
    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Discard one incomplete upload and everything it stored."""

    def abort_incomplete(self, older_than: timedelta, *, now: datetime | None = None,
                         dry_run: bool = False) -> builtins.list[IncompleteUpload]:
        """Abort the incomplete uploads this tool started at least `older_than` ago, by both
        the server's clock and its own record (a server that dates uploads wrongly, as moto
        does, must not get a running one aborted); returns them (`dry_run`: only returns
        them)."""
        cutoff = (now or datetime.now(UTC)) - older_than
        stale = [u for u in self.incomplete_uploads()
                 if u.recorded is not None and u.started <= cutoff and u.recorded <= cutoff]
        for upload in [] if dry_run else stale:
            self.abort_upload(upload)
        return stale


class Writer(ABC):
    """Write bytes, then `commit()` (publish) or `abort()`. Leaving a `with` block without a
    commit aborts, so an exception anywhere never publishes a partial object."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.size = 0
        self._done = False

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    @abstractmethod
    def commit(self) -> int:
        """Publish the object under `name` unless one exists (ObjectExistsError); returns its
        size. Any failure aborts the upload before raising."""

    def commit_first_free(self, names: Iterator[str]) -> int:
        """Like commit(), but when the name is taken, publish under the next of `names` that
        is free instead, and set `name` to the one used. Only a local directory can: remote
        backends fix the name when the upload starts, so they commit (or fail) as commit()."""
        return self.commit()

    @abstractmethod
    def abort(self) -> None:
        """Discard what was written; never raises (it runs while something already failed)."""

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Buffered data is uploaded by parts; there is nothing to force out before commit."""
        return None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()


def exists_error(store: Store, name: str) -> ObjectExistsError:
    return ObjectExistsError(
        f"{store.describe(name)} already exists; it was left as it is and this upload was "
        "discarded", hint="Choose another name, or delete that object first.")


def check_name(name: str) -> str:
    """`name` when it is a single path component (an object name), else OpsError."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise OpsError(f"{name!r} is not an object name (a single path component is needed)")
    return name
