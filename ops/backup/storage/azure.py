"""Backups in Azure Blob Storage, through azure-storage-blob."""

from __future__ import annotations

import builtins
import contextlib
import os
import uuid
from collections.abc import Iterator
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
    chunk_reader,
    connect_timeout,
    shown,
    storage_timeout,
)
from ops.core.errors import OpsError

# --- Azure Blob Storage ------------------------------------------------------------------------


class AzureStore(RemoteStore):
    """Azure block blobs (AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME with a
    key or SAS token; Azurite through its connection string)."""

    scheme = "az"
    kind = "Azure"

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(bucket, prefix)
        self._container: Any = None
        self.endpoint = "Azure Blob Storage"

    @property
    def container(self) -> Any:
        if self._container is None:
            self._container = self._service().get_container_client(self.bucket)
        return self._container

    def _service(self) -> Any:
        from azure.storage.blob import BlobServiceClient, LinearRetry

        options: dict[str, Any] = {
            "connection_timeout": connect_timeout(), "read_timeout": storage_timeout(),
            # downloads come in ranged requests of this size (the SDK's first one is 32 MB)
            "max_single_get_size": 4 << 20, "max_chunk_get_size": 4 << 20,
            "retry_policy": LinearRetry(backoff=1, retry_total=max(1, min(RETRY_SECONDS,
                                                                       storage_timeout())),
                                        random_jitter_range=0)}
        env = os.environ
        connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
        if not connection and env.get("AZURE_STORAGE_USE_EMULATOR", "").lower() in ("1", "true"):
            connection = "UseDevelopmentStorage=true"
        if connection:
            try:
                service = BlobServiceClient.from_connection_string(connection, **options)
            except ValueError:
                raise OpsError("Azure: AZURE_STORAGE_CONNECTION_STRING is not a valid "
                               "connection string", hint=CREDENTIAL_HINTS["az"]) from None
            self.endpoint = shown(service.url.split("?")[0])
            return service
        account = env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT")
        if not account:
            raise OpsError(f"Azure: no storage account is configured for {self}",
                           hint=CREDENTIAL_HINTS["az"])
        url = f"https://{account}.blob.core.windows.net"
        self.endpoint = url
        key = env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY")
        sas = env.get("AZURE_STORAGE_SAS_TOKEN")
        if key:
            credential: Any = {"account_name": account, "account_key": key}
        elif sas:
            credential = sas
        else:
            try:  # Azure AD (managed identity, az login), when azure-identity is installed
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise OpsError(f"Azure: no key for storage account {account}",
                               hint=CREDENTIAL_HINTS["az"]) from None
            credential = DefaultAzureCredential()
        return BlobServiceClient(url, credential=credential, **options)

    def _error(self, exc: Exception, doing: str, name: str | None) -> OpsError:
        from azure.core import exceptions as zx

        hint = CREDENTIAL_HINTS["az"]
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))  # the SDK gives an enum or a string
        if isinstance(exc, zx.ClientAuthenticationError) or code in (
                "AuthenticationFailed", "AuthorizationFailure", "InvalidAuthenticationInfo"):
            return self._failed(doing, name, f"the credentials were refused ({code or 403})",
                                hint)
        if isinstance(exc, zx.ResourceNotFoundError):
            return self._missing(doing, name, bucket_gone=code == "ContainerNotFound")
        if isinstance(exc, zx.ServiceRequestError | zx.ServiceResponseError
                      | zx.IncompleteReadError | ConnectionError):
            return self._unreachable(doing, name)
        if isinstance(exc, zx.HttpResponseError):
            return self._failed(doing, name, f"the server answered {code or exc.status_code}")
        return self._failed(doing, name, type(exc).__name__)

    def _blob(self, name: str) -> Any:
        return self.container.get_blob_client(self.key(name))

    def _walk(self, **options: Any) -> Iterator[Any]:
        """Blobs (and "directories", which `_direct` skips) directly under the prefix."""
        return iter(self.container.walk_blobs(name_starts_with=self.prefix, delimiter="/",
                                              **options))

    def list(self) -> list[ObjectInfo]:
        found = []
        with self.translating("listing"):
            for blob in self._walk():
                name = self._direct(blob.name)
                if name is not None:
                    found.append(ObjectInfo(name, blob.size, blob.last_modified))
        return sorted(found, key=lambda o: o.name)

    def exists(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        with self.translating("checking", name):
            try:
                self._blob(name).get_blob_properties()
            except ResourceNotFoundError:
                if self._bucket_missing():  # a HEAD says only 404, for both
                    raise self._missing("checking", name, bucket_gone=True) from None
                return False
        return True

    def _bucket_exists(self) -> bool:
        # Listing works with a container-scoped SAS token, where container properties may not.
        from azure.core.exceptions import ResourceNotFoundError

        try:
            next(iter(self.container.list_blobs(name_starts_with=self.prefix,
                                                results_per_page=1)), None)
        except ResourceNotFoundError:
            return False
        return True

    def open_reader(self, name: str) -> BinaryIO:
        with self.translating("opening", name):
            download = self._blob(name).download_blob(max_concurrency=1)
        return chunk_reader(download.chunks(), self, name)

    def read_tail(self, name: str, length: int, *, size: int | None = None) -> bytes:
        with self.translating("reading", name):
            blob = self._blob(name)
            size = blob.get_blob_properties().size if size is None else size
            if length <= 0 or size == 0:
                return b""
            start = max(0, size - length)
            return bytes(blob.download_blob(offset=start, length=size - start).readall())

    def open_writer(self, name: str, *, part_size: int = PART_SIZE) -> Writer:
        return _AzureWriter(self, name, part_size)

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.translating("deleting", name), contextlib.suppress(ResourceNotFoundError):
            self._blob(name).delete_blob()

    def _discard_uncommitted(self, name: str) -> None:
        """Delete a blob that has only uncommitted blocks. A committed blob of that name is
        someone's object and is kept (its stray blocks expire within a week); between the
        check and the delete lies one request, a race far narrower than a backup's run."""
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._blob(name)
        try:
            blob.get_blob_properties()
            return
        except ResourceNotFoundError:
            pass
        with contextlib.suppress(ResourceNotFoundError):
            blob.delete_blob()

    def incomplete_uploads(self) -> builtins.list[IncompleteUpload]:
        with self.translating("listing unfinished uploads in"):
            committed = {b.name for b in self._walk()}
            found = []
            for blob in self._walk(include=["uncommittedblobs"]):
                name = self._direct(blob.name)
                if name is not None and blob.name not in committed:
                    moment = blob.creation_time or blob.last_modified
                    # ours when named like our objects; Azure's creation time is the record
                    ours = name.startswith(("backup-", "pre-restore-"))
                    found.append(IncompleteUpload(name, moment, blob.name,
                                                  moment if ours else None))
        return sorted(found, key=lambda u: u.started)

    def abort_upload(self, upload: IncompleteUpload) -> None:
        with self.translating("aborting the upload of", upload.name):
            self._discard_uncommitted(upload.name)


class _AzureWriter(PartWriter):
    def __init__(self, store: AzureStore, name: str, part_size: int) -> None:
        self.azure = store
        store.check_writable(name)
        self.blob = store._blob(name)
        # Block ids carry this upload's id: two writers aimed at one name never mix blocks.
        self.upload_id = uuid.uuid4().hex[:16]
        super().__init__(store, name, part_size)

    def _block_id(self, number: int) -> str:
        import base64

        return base64.b64encode(f"{self.upload_id}-{number:06d}".encode()).decode()

    def _upload_part(self, number: int, data: bytes) -> None:
        self.blob.stage_block(self._block_id(number), data, length=len(data))

    def _complete(self, parts: int) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobBlock

        try:
            self.blob.commit_block_list(
                [BlobBlock(self._block_id(n)) for n in range(1, parts + 1)], if_none_match="*")
        except ResourceExistsError:
            raise exists_error(self.azure, self.name) from None

    def _discard(self) -> None:
        self.azure._discard_uncommitted(self.name)

