"""Where backups live: a local directory, or a prefix in S3, Google Cloud Storage or Azure Blob.

`open_store(location)` gives a `Store` (one module per backend beside this one); the code that
writes and reads backups talks only to it. Every operation streams with bounded memory:
writers upload in parts of `PART_SIZE` (a few parts in flight at most), readers pull the object
in chunks, `read_tail` is one range request.
An object appears only when `Writer.commit()` publishes it, and publishing never replaces an
object that exists. Failures surface as one-line `OpsError`s naming the variable to fix.

Libraries: each cloud's own SDK (boto3, google-cloud-storage, azure-storage-blob), imported
only when a store of that kind is opened. obstore was the first candidate and was tried against
the same servers the tests use; it fell short where backups need it most:
- it cannot list or abort unfinished multipart uploads (its writer hides the upload id), so
  the upload of a killed backup could never be found and cleaned up;
- its conditional "create" put is single-request only (the whole object in memory): there is
  no If-None-Match on the completion of a multipart upload;
- against gcp-storage-emulator every upload fails (it uploads through GCS's XML API: plain
  puts miss an ETag, multipart answers 501), and it reads neither STORAGE_EMULATOR_HOST nor
  AZURE_STORAGE_CONNECTION_STRING; for S3 it skips the shared config/credentials files.
The SDKs also bring each cloud's full standard credential chain.

How each backend keeps "appears only when complete, never overwrites":
- local: a hidden 0600 `.NAME.XXXXXXXX.partial` temp file beside the target, fsynced, then
  hard-linked to its name (a link fails where a rename would overwrite);
- S3: a multipart upload completed with If-None-Match: * (checked with HEAD first as well, for
  S3-compatible servers that do not implement the condition);
- GCS: parts are hidden objects under `PREFIX.partial/NAME/UPLOAD/`, composed into the object
  with ifGenerationMatch=0 and then deleted (the parts can be listed, which GCS resumable
  uploads cannot; an existence check runs first because emulators ignore preconditions);
- Azure: blocks staged on the blob and committed with If-None-Match: * (uncommitted blocks
  are listed as "uncommitted blobs").
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from ops.core.errors import OpsError

# One part of a remote upload: the unit of memory (at most three are held: one filling, one
# queued, one uploading). S3 needs at least 5 MiB per part and allows 10,000 parts; the size
# doubles every 2,000 parts (up to 128 MiB), so objects up to ~500 GB fit while the usual ones
# stay at 8 MiB.
PART_SIZE = 8 << 20
_PARTS_PER_SIZE = 2000
_MAX_DOUBLINGS = 4
READ_CHUNK = 8 << 20
# How long GCS and Azure requests keep retrying network failures before the operation fails
# (S3 follows the AWS standard settings: AWS_MAX_ATTEMPTS, AWS_RETRY_MODE).
RETRY_SECONDS = 20
_CONNECT_TIMEOUT = 10
_READ_TIMEOUT = 60

ACCEPTED_FORMS = ("s3://bucket/prefix, gs://bucket/prefix, az://container/prefix "
                  "(or azure://), file:///path, or a plain path")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)
_ALMOST_URL = re.compile(r"^(?P<scheme>s3|gs|gcs|az|azure|file|https?)(:/?|//)(?!/)", re.I)


@dataclass(frozen=True)
class ObjectInfo:
    name: str  # relative to the store's prefix
    size: int
    modified: datetime


@dataclass(frozen=True)
class IncompleteUpload:
    """An upload that was started and never committed or aborted (its writer died)."""
    name: str
    started: datetime
    handle: str  # the backend's id: S3 upload id, GCS parts prefix, Azure blob, temp path


class ObjectExistsError(OpsError):
    """Publishing refused: an object of that name exists (it was left as it is)."""



# --- The interface -----------------------------------------------------------------------------


class Store(ABC):
    """Objects directly under one directory or bucket prefix. `str(store)` is the location,
    safe to print (it never holds a secret)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def describe(self, name: str) -> str:
        """Where object `name` lives, for messages."""
        return f"{self.location.rstrip('/')}/{name}"

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
    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """Uploads started and never finished (writers killed or cut off), oldest first."""

    @abstractmethod
    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Discard one incomplete upload and everything it stored."""

    def abort_incomplete(self, older_than: timedelta) -> list[IncompleteUpload]:
        """Abort the incomplete uploads started at least `older_than` ago; returns them."""
        cutoff = datetime.now(UTC) - older_than
        stale = [u for u in self.incomplete_uploads() if u.started <= cutoff]
        for upload in stale:
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


def _exists_error(store: Store, name: str) -> ObjectExistsError:
    return ObjectExistsError(
        f"{store.describe(name)} already exists; it was left as it is and this upload was "
        "discarded", hint="Choose another name, or delete that object first.")



# --- Shared remote machinery -------------------------------------------------------------------


class _RemoteStore(Store):
    """A bucket (or container) and a key prefix; subclasses translate their SDK's errors."""

    scheme = ""
    kind = ""  # for messages: "S3", "GCS", "Azure"
    endpoint = ""  # where requests go, for messages (never with credentials)

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(f"{self.scheme}://{bucket}" + (f"/{prefix}" if prefix else ""))
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def key(self, name: str) -> str:
        return self.prefix + _check_name(name)

    def _direct(self, key: str) -> str | None:
        """The name of `key` when it is directly under the prefix and not hidden."""
        if not key.startswith(self.prefix):
            return None
        name = key[len(self.prefix):]
        return name if name and "/" not in name and not name.startswith(".") else None

    @contextlib.contextmanager
    def _errors(self, doing: str, name: str | None = None) -> Iterator[None]:
        """Any SDK or network failure inside becomes one OpsError line."""
        try:
            yield
        except OpsError:
            raise
        except Exception as exc:
            # Not chained: SDK messages can carry request URLs, and an Azure SAS token sits in
            # the query string; a traceback (--debug) must not print it.
            raise self._error(exc, doing, name) from None

    @abstractmethod
    def _error(self, exc: Exception, doing: str, name: str | None) -> OpsError: ...

    def _failed(self, doing: str, name: str | None, what: str,
                hint: str | None = None) -> OpsError:
        target = self.describe(name) if name else str(self)
        return OpsError(f"{self.kind}: {doing} {target} failed: {what}", hint=hint)

    def _unreachable(self, doing: str, name: str | None) -> OpsError:
        return self._failed(doing, name, f"cannot reach {self.endpoint} (network down or "
                            "server stopped?)", hint=_UNREACHABLE_HINTS[self.scheme])

    def _bucket_missing(self) -> bool:
        """Whether the bucket is gone, asked after a not-found (False when that fails too)."""
        try:
            return not self._bucket_exists()
        except Exception:
            return False

    @abstractmethod
    def _bucket_exists(self) -> bool: ...

    def _check_writable(self, name: str) -> None:
        """Fail before any data is produced when the bucket or credentials are wrong (S3's
        first request, starting the multipart upload, does this by itself)."""
        with self._errors("starting the upload of", name):
            if not self._bucket_exists():
                raise self._missing("starting the upload of", name, bucket_gone=True)

    def _missing(self, doing: str, name: str | None, *, bucket_gone: bool = False) -> OpsError:
        """Not found: the bucket when it is gone (asked unless known), else the object."""
        if bucket_gone or name is None or self._bucket_missing():
            what = "container" if self.scheme == "az" else "bucket"
            return self._failed(doing, name, f"{what} {self.bucket} does not exist",
                                f"Create the {what}, or fix its name in BACKUP_DIR.")
        return self._failed(doing, name, "no such object", "`backups` lists what there is.")


_CREDENTIAL_HINTS = {
    "s3": "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
          "credentials) or AWS_PROFILE, AWS_REGION, and AWS_ENDPOINT_URL for S3-compatible "
          "servers.",
    "gs": "Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or run "
          "`gcloud auth application-default login`).",
    "az": "Set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
          "AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN).",
}
_UNREACHABLE_HINTS = {
    "s3": "Check the network, and AWS_ENDPOINT_URL when using an S3-compatible server.",
    "gs": "Check the network, and STORAGE_EMULATOR_HOST when using an emulator.",
    "az": "Check the network, and the endpoint in AZURE_STORAGE_CONNECTION_STRING.",
}


class _PartWriter(Writer):
    """Buffers writes into parts and uploads them on one background thread, so uploading
    overlaps with producing the data while memory stays at about three parts."""

    def __init__(self, store: _RemoteStore, name: str, part_size: int) -> None:
        super().__init__(store, name)
        self.remote: _RemoteStore = store
        self.uploaded = 0  # bytes the server has acknowledged
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts = 0
        self._failure: BaseException | None = None
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._upload_loop, daemon=True,
                                        name=f"upload-{name}")
        self._thread.start()

    # Backend steps: each may raise SDK exceptions (translated by the caller).
    @abstractmethod
    def _upload_part(self, number: int, data: bytes) -> None: ...

    @abstractmethod
    def _complete(self, parts: int) -> None: ...

    @abstractmethod
    def _discard(self) -> None: ...

    def _upload_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain, so the producer never blocks on a dead uploader
            number, data = item
            try:
                with self.remote._errors("uploading", self.name):
                    self._upload_part(number, data)
                self.uploaded += len(data)
            except BaseException as exc:  # handed to the producer on its next call
                self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure = self._failure
            self.abort()
            raise failure

    def _current_part_size(self) -> int:
        return self._part_size << min(self._parts // _PARTS_PER_SIZE, _MAX_DOUBLINGS)

    def _submit(self, data: bytes) -> None:
        self._parts += 1
        self._queue.put((self._parts, data))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise ValueError("write to a finished writer")
        self._raise_failure()
        self._buffer += data
        self.size += len(data)
        size = self._current_part_size()
        while len(self._buffer) >= size:
            with memoryview(self._buffer) as view:  # one copy of the part, not two
                part = bytes(view[:size])
            del self._buffer[:size]
            self._submit(part)
            self._raise_failure()
        return len(data)

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def commit(self) -> int:
        if self._done:
            raise ValueError("commit of a finished writer")
        if self._buffer or self._parts == 0:
            self._submit(bytes(self._buffer))
            self._buffer = bytearray()
        self._stop_thread()
        self._raise_failure()
        try:
            with self.remote._errors("publishing", self.name):
                self._complete(self._parts)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._failure = self._failure or OSError("aborted")  # the thread stops uploading
        self._buffer = bytearray()
        self._stop_thread()
        # Best effort: if this fails too (server gone), the upload stays listed by
        # incomplete_uploads() and a later abort_incomplete() removes it.
        with contextlib.suppress(Exception):
            self._discard()


class _ChunkStream(io.RawIOBase):
    """A raw stream over an iterator of byte chunks, turning failures into OpsError."""

    def __init__(self, chunks: Iterator[bytes], store: _RemoteStore, name: str,
                 close: Callable[[], None] | None = None) -> None:
        self._chunks = chunks
        self._store = store
        self._name = name
        self._pending = memoryview(b"")
        self._on_close = close
        self._error: OpsError | None = None  # raised again by every later read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._error is not None:
                raise self._error  # a failed stream never looks like a clean end
            try:
                with self._store._errors("reading", self._name):
                    chunk = next(self._chunks, None)
            except OpsError as exc:
                self._error = exc
                raise
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            with contextlib.suppress(Exception):
                self._on_close()
        super().close()


def _reader(chunks: Iterator[bytes], store: _RemoteStore, name: str,
            close: Callable[[], None] | None = None) -> BinaryIO:
    return io.BufferedReader(_ChunkStream(chunks, store, name, close), 1 << 20)  # type: ignore[return-value]


def _ranges(size: int, chunk: int = READ_CHUNK) -> Iterator[tuple[int, int]]:
    """[start, end) ranges covering `size` bytes."""
    for start in range(0, size, chunk):
        yield start, min(size, start + chunk)



# --- Locations ---------------------------------------------------------------------------------


# The standard variables the SDKs read. Compose passes each one, empty when not set; an SDK
# would take an empty one as a value (an empty endpoint, an empty region), so empty is unset.
CLOUD_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
)


def _unset_empty_variables() -> None:
    for name in CLOUD_VARIABLES:
        if os.environ.get(name) == "":
            del os.environ[name]


def open_store(location: str | Path) -> Store:
    """The store for a backup directory or bucket prefix; refuses unknown forms with one line."""
    _unset_empty_variables()
    from ops.backup.storage.azure import AzureStore
    from ops.backup.storage.gcs import GCSStore
    from ops.backup.storage.local import LocalStore
    from ops.backup.storage.s3 import S3Store

    if isinstance(location, Path):
        return LocalStore(location)
    text = location.strip()
    match = _URL.match(text)
    if match is None:
        if _ALMOST_URL.match(text):
            raise OpsError(f"{_shown(text)} looks like a storage URL but is not one",
                           hint=f"Use one of: {ACCEPTED_FORMS}.")
        return LocalStore(Path(text))
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise OpsError(f"{_shown(text)} is not a local file URL (file:///absolute/path)",
                           hint=f"Use one of: {ACCEPTED_FORMS}.")
        return LocalStore(Path(unquote(parts.path)))
    makers: dict[str, Callable[[str, str], Store]] = {
        "s3": S3Store, "gs": GCSStore, "az": AzureStore, "azure": AzureStore}
    if scheme not in makers:
        raise OpsError(f"unknown storage scheme {scheme}:// in {_shown(text)}",
                       hint=f"Use one of: {ACCEPTED_FORMS}.")
    bucket, _, prefix = rest.partition("/")
    what = "container" if scheme in ("az", "azure") else "bucket"
    if "@" in bucket or ":" in bucket:
        # Never echo it: what sits before "@" is likely a secret.
        raise OpsError(f"the {scheme}:// location carries credentials or a port, which do "
                       "not belong there", hint=_CREDENTIAL_HINTS[makers[scheme].scheme])
    if not bucket:
        raise OpsError(f"{_shown(text)} names no {what}", hint=f"Use one of: {ACCEPTED_FORMS}.")
    if "?" in text or "#" in text:
        raise OpsError(f"{_shown(text)} may not carry a ?query or #fragment",
                       hint=f"Use one of: {ACCEPTED_FORMS}.")
    return makers[scheme](bucket, prefix.strip("/"))


def open_object(location: str | Path) -> tuple[Store, str]:
    """The store holding one object (`s3://bucket/dir/backup-....json`, a file path or URL)
    and the object's name in it, for options that take a single backup."""
    from ops.backup.storage.local import LocalStore

    if isinstance(location, Path):
        return LocalStore(location.parent), _check_name(location.name)
    text = location.strip()
    match = _URL.match(text)
    if match is None and not _ALMOST_URL.match(text):
        path = Path(text)
        return LocalStore(path.parent), _check_name(path.name)
    store = open_store(text)  # refuses what is not a location at all
    if isinstance(store, LocalStore):  # file:///dir/name
        return LocalStore(store.directory.parent), _check_name(store.directory.name)
    assert isinstance(store, _RemoteStore)
    if not store.prefix:
        raise OpsError(f"{_shown(text)} names a {store.scheme}:// bucket, not an object in it",
                       hint="Add /NAME of the object.")
    parent, _, name = store.prefix.rstrip("/").rpartition("/")
    return type(store)(store.bucket, parent), _check_name(name)


def _shown(text: str) -> str:
    """The location as it may be printed: anything between :// and @ is dropped."""
    return re.sub(r"://[^/@]*@", "://", text)[:200]


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise OpsError(f"{name!r} is not an object name (a single path component is needed)")
    return name


