"""Backups in Google Cloud Storage, through google-cloud-storage."""

from __future__ import annotations

import builtins
import contextlib
import os
import uuid
from datetime import UTC, datetime
from typing import Any, BinaryIO

from ops.backup.storage.interface import (
    PART_SIZE,
    IncompleteUpload,
    ObjectInfo,
    Writer,
    exists_error,
)
from ops.backup.storage.remote import (
    CREDENTIAL_HINTS,
    RETRY_SECONDS,
    PartWriter,
    RemoteStore,
    byte_ranges,
    chunk_reader,
    connect_timeout,
    shown,
    storage_timeout,
)
from ops.core.errors import OpsError

_GCS_MAX_COMPOSE = 32  # sources per compose request
_STARTED = "%Y%m%dT%H%M%SZ"


def _recorded(upload: str) -> datetime | None:
    """When this tool started the upload, from its directory's name (None: not ours)."""
    try:
        return datetime.strptime(upload.partition("-")[0], _STARTED).replace(tzinfo=UTC)
    except ValueError:
        return None

# --- Google Cloud Storage ----------------------------------------------------------------------


class GCSStore(RemoteStore):
    """GCS through its JSON API (GOOGLE_APPLICATION_CREDENTIALS, or STORAGE_EMULATOR_HOST)."""

    scheme = "gs"
    kind = "GCS"

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(bucket, prefix)
        self.endpoint = shown(os.environ.get("STORAGE_EMULATOR_HOST") or "Google Cloud Storage")
        self._client: Any = None
        self.parts_prefix = f"{self.prefix}.partial/"

    @property
    def client(self) -> Any:
        # Built on first use: finding credentials may fail, and that failure belongs to an
        # operation (with its one-line message), not to opening the location.
        if self._client is None:
            from google.cloud import storage

            self._client = storage.Client(project=None)
        return self._client

    @property
    def _limits(self) -> dict[str, Any]:
        """The retry and timeout every request passes: without its own timeout a request
        waits the library's default (a minute) on a stalled server, and the retry deadline
        does not interrupt a request in flight."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        return {"retry": DEFAULT_RETRY.with_timeout(min(RETRY_SECONDS, storage_timeout())),
                "timeout": (connect_timeout(), storage_timeout())}

    def _bucket(self) -> Any:
        return self.client.bucket(self.bucket)

    def _error(self, exc: Exception, doing: str, name: str | None) -> OpsError:
        import requests
        from google.api_core import exceptions as gx
        from google.auth import exceptions as ax

        hint = CREDENTIAL_HINTS["gs"]
        if isinstance(exc, ax.DefaultCredentialsError):
            return self._failed(doing, name, "no usable Google credentials were found", hint)
        if isinstance(exc, ax.RefreshError | gx.Unauthorized | gx.Forbidden):
            return self._failed(doing, name, "the credentials were refused", hint)
        if isinstance(exc, gx.NotFound):
            return self._missing(doing, name)
        if isinstance(exc, gx.PreconditionFailed):
            return exists_error(self, name or "")
        if isinstance(exc, requests.ConnectionError | requests.Timeout | ax.TransportError
                      | gx.RetryError | ConnectionError):
            return self._unreachable(doing, name)
        if isinstance(exc, gx.GoogleAPICallError):
            return self._failed(doing, name, f"the server answered {exc.code}")
        return self._failed(doing, name, type(exc).__name__)

    def list(self) -> list[ObjectInfo]:
        found = []
        with self.translating("listing"):
            blobs = self.client.list_blobs(self.bucket, prefix=self.prefix, delimiter="/",
                                           **self._limits)
            for blob in blobs:
                name = self._direct(blob.name)
                if name is not None:
                    found.append(ObjectInfo(name, blob.size, blob.updated))
        return sorted(found, key=lambda o: o.name)

    def exists(self, name: str) -> bool:
        with self.translating("checking", name):
            if self._bucket().blob(self.key(name)).exists(**self._limits):
                return True
            if self._bucket_missing():
                raise self._missing("checking", name, bucket_gone=True)
        return False

    def _bucket_exists(self) -> bool:
        # Listing needs only object permissions (storage.objects.list); asking for the bucket
        # itself would need storage.buckets.get, which object-only roles lack.
        from google.api_core.exceptions import NotFound

        try:
            next(iter(self.client.list_blobs(self.bucket, prefix=self.prefix, max_results=1,
                                             **self._limits)), None)
        except NotFound:
            return False
        return True

    def _size(self, name: str) -> int:
        from google.api_core.exceptions import NotFound

        blob = self._bucket().get_blob(self.key(name), **self._limits)
        if blob is None:
            # google-api-core leaves its exceptions' constructors untyped
            raise NotFound("no such object")  # type: ignore[no-untyped-call]
        return int(blob.size)

    def _range(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end): the emulator knows no suffix ranges, so both ends are given."""
        blob = self._bucket().blob(self.key(name))
        return bytes(blob.download_as_bytes(start=start, end=end - 1, raw_download=True,
                                            checksum=None, **self._limits))

    def open_reader(self, name: str) -> BinaryIO:
        with self.translating("opening", name):
            size = self._size(name)
        chunks = (self._range(name, start, end) for start, end in byte_ranges(size))
        return chunk_reader(chunks, self, name)

    def read_tail(self, name: str, length: int, *, size: int | None = None) -> bytes:
        with self.translating("reading", name):
            size = self._size(name) if size is None else size
            if length <= 0 or size == 0:
                return b""
            return self._range(name, max(0, size - length), size)

    def open_writer(self, name: str, *, part_size: int = PART_SIZE) -> Writer:
        return _GCSWriter(self, name, part_size)

    def _delete_keys(self, keys: builtins.list[str]) -> None:
        from google.api_core.exceptions import NotFound

        bucket = self._bucket()
        for key in keys:
            with contextlib.suppress(NotFound):
                bucket.blob(key).delete(**self._limits)

    def delete(self, name: str) -> None:
        with self.translating("deleting", name):
            self._delete_keys([self.key(name)])

    def incomplete_uploads(self) -> builtins.list[IncompleteUpload]:
        started: dict[tuple[str, str], datetime] = {}
        with self.translating("listing unfinished uploads in"):
            for blob in self.client.list_blobs(self.bucket, prefix=self.parts_prefix,
                                               **self._limits):
                name, _, rest = blob.name[len(self.parts_prefix):].partition("/")
                upload = rest.partition("/")[0]
                moment = blob.time_created
                key = (name, upload)
                started[key] = min(started.get(key, moment), moment)
        return sorted((IncompleteUpload(name, moment, f"{self.parts_prefix}{name}/{upload}/",
                                        _recorded(upload))
                       for (name, upload), moment in started.items()), key=lambda u: u.started)

    def abort_upload(self, upload: IncompleteUpload) -> None:
        with self.translating("aborting the upload of", upload.name):
            self._delete_keys([b.name for b in self.client.list_blobs(
                self.bucket, prefix=upload.handle, **self._limits)])


class _GCSWriter(PartWriter):
    def __init__(self, store: GCSStore, name: str, part_size: int) -> None:
        self.gcs = store
        self.target = store.key(name)
        # the upload's directory says when this tool started it (its own record)
        started = datetime.now(UTC).strftime(_STARTED)
        self.parts_dir = f"{store.parts_prefix}{name}/{started}-{uuid.uuid4().hex[:16]}/"
        store.check_writable(name)
        super().__init__(store, name, part_size)

    def _part(self, number: int) -> str:
        return f"{self.parts_dir}{number:06d}"

    def _upload_part(self, number: int, data: bytes) -> None:
        blob = self.gcs._bucket().blob(self._part(number))
        blob.upload_from_string(data, content_type="application/octet-stream",
                                if_generation_match=0, **self.gcs._limits)

    def _complete(self, parts: int) -> None:
        bucket = self.gcs._bucket()
        sources = [self._part(n) for n in range(1, parts + 1)]
        level = 0
        while len(sources) > _GCS_MAX_COMPOSE:  # compose in a tree, 32 sources at a time
            level += 1
            merged = []
            for index in range(0, len(sources), _GCS_MAX_COMPOSE):
                key = f"{self.parts_dir}c{level}-{index:06d}"
                bucket.blob(key).compose(
                    [bucket.blob(s) for s in sources[index:index + _GCS_MAX_COMPOSE]],
                    **self.gcs._limits)
                merged.append(key)
            sources = merged
        if self.gcs.exists(self.name):
            raise exists_error(self.gcs, self.name)
        bucket.blob(self.target).compose([bucket.blob(s) for s in sources],
                                         if_generation_match=0, **self.gcs._limits)
        with contextlib.suppress(Exception):  # leftovers stay listed as an incomplete upload
            self._discard()

    def _discard(self) -> None:
        self.gcs._delete_keys([b.name for b in self.gcs.client.list_blobs(
            self.gcs.bucket, prefix=self.parts_dir, **self.gcs._limits)])


