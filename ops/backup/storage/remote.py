"""What the bucket backends (S3, GCS, Azure) share: a bucket and prefix, errors translated to
one line, uploads in parts on a background thread, downloads as a buffered stream.

How each backend keeps "appears only when complete, never overwrites":
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
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ops.backup.storage.interface import Store, Writer, check_name
from ops.core.errors import OpsError
from ops.core.masking import mask_secrets

_PARTS_PER_SIZE = 2000
_MAX_DOUBLINGS = 4
READ_CHUNK = 8 << 20
# How long GCS and Azure requests keep retrying network failures before the operation fails
# (S3 follows the AWS standard settings: AWS_MAX_ATTEMPTS, AWS_RETRY_MODE).
RETRY_SECONDS = 20
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
TIMEOUT_VARIABLE = "STORAGE_TIMEOUT"


def storage_timeout() -> int:
    """Seconds one storage request may wait for the server (STORAGE_TIMEOUT, default
    READ_TIMEOUT): a stalled server fails the command then, rather than keeping a backup's
    or a restore's table locks held for as long as it stalls."""
    value = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:
        return READ_TIMEOUT
    if not value.isdigit() or int(value) < 1:
        raise OpsError(f"{TIMEOUT_VARIABLE}={value!r} is not a whole number of seconds",
                       hint=f"Set {TIMEOUT_VARIABLE} to 10, 60, ... or leave it empty for "
                       f"{READ_TIMEOUT}.")
    return int(value)


def connect_timeout() -> int:
    return min(CONNECT_TIMEOUT, storage_timeout())


class RemoteStore(Store):
    """A bucket (or container) and a key prefix; subclasses translate their SDK's errors."""

    scheme = ""
    kind = ""  # for messages: "S3", "GCS", "Azure"
    endpoint = ""  # where requests go, for messages (never with credentials)

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(f"{self.scheme}://{bucket}" + (f"/{prefix}" if prefix else ""))
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def parent_and_name(self) -> tuple[Store, str]:
        if not self.prefix:
            raise OpsError(f"{self} names a {self.scheme}:// bucket, not an object in it",
                           hint="Add /NAME of the object.")
        parent, _, name = self.prefix.rstrip("/").rpartition("/")
        return type(self)(self.bucket, parent), check_name(name)

    def key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _direct(self, key: str) -> str | None:
        """The name of `key` when it is directly under the prefix and not hidden."""
        if not key.startswith(self.prefix):
            return None
        name = key[len(self.prefix):]
        return name if name and "/" not in name and not name.startswith(".") else None

    @contextlib.contextmanager
    def translating(self, doing: str, name: str | None = None) -> Iterator[None]:
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
                            "server stopped?)", hint=UNREACHABLE_HINTS[self.scheme])

    def _bucket_missing(self) -> bool:
        """Whether the bucket is gone, asked after a not-found (False when that fails too)."""
        try:
            return not self._bucket_exists()
        except Exception:
            return False

    @abstractmethod
    def _bucket_exists(self) -> bool: ...

    def check_writable(self, name: str) -> None:
        """Fail before any data is produced when the bucket or credentials are wrong (S3's
        first request, starting the multipart upload, does this by itself)."""
        with self.translating("starting the upload of", name):
            if not self._bucket_exists():
                raise self._missing("starting the upload of", name, bucket_gone=True)

    def _missing(self, doing: str, name: str | None, *, bucket_gone: bool = False) -> OpsError:
        """Not found: the bucket when it is gone (asked unless known), else the object."""
        if bucket_gone or name is None or self._bucket_missing():
            what = "container" if self.scheme == "az" else "bucket"
            return self._failed(doing, name, f"{what} {self.bucket} does not exist",
                                f"Create the {what}, or fix its name in BACKUP_DIR.")
        return self._failed(doing, name, "no such object", "`backups` lists what there is.")


CREDENTIAL_HINTS = {
    "s3": "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
          "credentials) or AWS_PROFILE, AWS_REGION, and AWS_ENDPOINT_URL for S3-compatible "
          "servers.",
    "gs": "Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or run "
          "`gcloud auth application-default login`).",
    "az": "Set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
          "AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN).",
}
UNREACHABLE_HINTS = {
    "s3": "Check the network, and AWS_ENDPOINT_URL when using an S3-compatible server.",
    "gs": "Check the network, and STORAGE_EMULATOR_HOST when using an emulator.",
    "az": "Check the network, and the endpoint in AZURE_STORAGE_CONNECTION_STRING.",
}


class PartWriter(Writer):
    """Buffers writes into parts and uploads them on one background thread, so uploading
    overlaps with producing the data while memory stays at about three parts."""

    def __init__(self, store: RemoteStore, name: str, part_size: int) -> None:
        super().__init__(store, name)
        self.remote: RemoteStore = store
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
                with self.remote.translating("uploading", self.name):
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
            with self.remote.translating("publishing", self.name):
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


class ChunkStream(io.RawIOBase):
    """A raw stream over an iterator of byte chunks, turning failures into OpsError."""

    def __init__(self, chunks: Iterator[bytes], store: RemoteStore, name: str,
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
                with self._store.translating("reading", self._name):
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


def chunk_reader(chunks: Iterator[bytes], store: RemoteStore, name: str,
            close: Callable[[], None] | None = None) -> BinaryIO:
    return io.BufferedReader(ChunkStream(chunks, store, name, close), 1 << 20)


def byte_ranges(size: int, chunk: int = READ_CHUNK) -> Iterator[tuple[int, int]]:
    """[start, end) ranges covering `size` bytes."""
    for start in range(0, size, chunk):
        yield start, min(size, start + chunk)


def shown(text: str) -> str:
    """A location as it may be printed: its secrets masked, its length bounded."""
    return mask_secrets(text)[:200]
