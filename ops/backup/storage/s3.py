"""Backups in Amazon S3 or an S3-compatible server (MinIO, Ceph, R2, ...), through boto3."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
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
    PartWriter,
    RemoteStore,
    chunk_reader,
    connect_timeout,
    shown,
    storage_timeout,
)
from ops.core.errors import OpsError

_S3_MIN_PART = 5 << 20
_RECORDS = ".uploads/"  # under the prefix: this tool's record of each upload it started

# --- S3 ----------------------------------------------------------------------------------------


class S3Store(RemoteStore):
    """S3 or an S3-compatible server (AWS_ENDPOINT_URL, plain http on loopback included)."""

    scheme = "s3"
    kind = "S3"

    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(bucket, prefix)
        import boto3
        from botocore.config import Config

        self.endpoint = shown(os.environ.get("AWS_ENDPOINT_URL_S3")
                               or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3")
        session = boto3.session.Session()
        # S3 signing needs a region; S3-compatible servers take any, AWS redirects to the right
        # one, so us-east-1 stands in when none is configured.
        region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
        self.client = session.client("s3", region_name=region, config=Config(
            connect_timeout=connect_timeout(), read_timeout=storage_timeout()))

    def _error(self, exc: Exception, doing: str, name: str | None) -> OpsError:
        from botocore import exceptions as bx

        hint = CREDENTIAL_HINTS["s3"]
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return self._failed(doing, name, "no AWS credentials were found", hint)
        if isinstance(exc, bx.NoRegionError):
            return self._failed(doing, name, "no AWS region is configured", hint)
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or status == 404:
                return self._missing(doing, name, bucket_gone=code == "NoSuchBucket")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                        "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
                        "403", "AccessDenied", "AllAccessDisabled") or status in (401, 403):
                return self._failed(doing, name, f"the credentials were refused ({code or status})",
                                    hint)
            return self._failed(doing, name, f"the server answered {code or status}")
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError
                      | bx.ReadTimeoutError | bx.ConnectTimeoutError | bx.ResponseStreamingError
                      | bx.IncompleteReadError | bx.HTTPClientError | ConnectionError):
            return self._unreachable(doing, name)
        return self._failed(doing, name, type(exc).__name__)

    def list(self) -> list[ObjectInfo]:
        found = []
        with self.translating("listing"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            for page in pages:
                for item in page.get("Contents", []):
                    name = self._direct(item["Key"])
                    if name is not None:
                        found.append(ObjectInfo(name, item["Size"], item["LastModified"]))
        return sorted(found, key=lambda o: o.name)

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        with self.translating("checking", name):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                if self._bucket_missing():  # a HEAD says only 404, for both
                    raise self._missing("checking", name, bucket_gone=True) from None
                return False
        return True

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def open_reader(self, name: str) -> BinaryIO:
        with self.translating("opening", name):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
        return chunk_reader(body.iter_chunks(1 << 20), self, name, body.close)

    def read_tail(self, name: str, length: int, *, size: int | None = None) -> bytes:
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        with self.translating("reading", name):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key(name),
                                                  Range=f"bytes=-{length}")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # an empty object has no last bytes
                raise
            return bytes(response["Body"].read())

    def open_writer(self, name: str, *, part_size: int = PART_SIZE) -> Writer:
        return _S3Writer(self, name, max(part_size, _S3_MIN_PART))

    def delete(self, name: str) -> None:
        with self.translating("deleting", name):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def record_key(self, upload_id: str) -> str:
        """Where this tool records an upload it started (hidden: `list` never sees it)."""
        return f"{self.prefix}{_RECORDS}{hashlib.sha256(upload_id.encode()).hexdigest()}"

    def _records(self) -> dict[str, datetime]:
        """Upload id -> when this tool started it, by its own clock."""
        found: dict[str, datetime] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{_RECORDS}")
        for page in pages:
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    record = json.loads(body.read(4096))
                    found[record["upload"]] = datetime.fromisoformat(record["started"])
        return found

    def incomplete_uploads(self) -> builtins.list[IncompleteUpload]:
        found = []
        with self.translating("listing unfinished uploads in"):
            records = self._records()
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for upload in page.get("Uploads", []):
                    name = self._direct(upload["Key"])
                    if name is not None:
                        found.append(IncompleteUpload(
                            name, upload["Initiated"].astimezone(UTC), upload["UploadId"],
                            records.get(upload["UploadId"])))
        return sorted(found, key=lambda u: u.started)

    def abort_upload(self, upload: IncompleteUpload) -> None:
        from botocore.exceptions import ClientError

        with self.translating("aborting the upload of", upload.name):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key(upload.name),
                                                   UploadId=upload.handle)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
            self.client.delete_object(Bucket=self.bucket, Key=self.record_key(upload.handle))


class _S3Writer(PartWriter):
    def __init__(self, store: S3Store, name: str, part_size: int) -> None:
        self.s3 = store
        self.key = store.key(name)
        # As boto3's own transfers do: a multipart upload whose parts carry checksums (the SDK
        # default) must declare the algorithm up front and list each part's checksum at the
        # end. AWS_REQUEST_CHECKSUM_CALCULATION=when_required turns this off for servers that
        # know no checksums.
        self._checksum = ({"ChecksumAlgorithm": "CRC32"}
                          if store.client.meta.config.request_checksum_calculation
                          == "when_supported" else {})
        with store.translating("starting the upload of", name):
            self.upload_id = store.client.create_multipart_upload(
                Bucket=store.bucket, Key=self.key, **self._checksum)["UploadId"]
            # Our own record of when we started it: `prune` aborts only uploads this tool
            # started, and only when this clock too says they are old.
            store.client.put_object(
                Bucket=store.bucket, Key=store.record_key(self.upload_id),
                Body=json.dumps({"upload": self.upload_id, "name": name,
                                 "started": datetime.now(UTC).isoformat()}).encode())
        self._parts_done: dict[int, dict[str, Any]] = {}
        super().__init__(store, name, part_size)

    def _upload_part(self, number: int, data: bytes) -> None:
        response = self.s3.client.upload_part(Bucket=self.s3.bucket, Key=self.key,
                                              UploadId=self.upload_id, PartNumber=number,
                                              Body=data, **self._checksum)
        part = {"ETag": response["ETag"], "PartNumber": number}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        self._parts_done[number] = part

    def _complete(self, parts: int) -> None:
        from botocore.exceptions import ClientError

        if self.s3.exists(self.name):
            raise exists_error(self.s3, self.name)
        upload = {"Parts": [self._parts_done[n] for n in range(1, parts + 1)]}
        arguments = {"Bucket": self.s3.bucket, "Key": self.key, "UploadId": self.upload_id,
                     "MultipartUpload": upload}
        try:
            self.s3.client.complete_multipart_upload(**arguments, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise exists_error(self.s3, self.name) from None
            if code != "NotImplemented":
                raise
            # A server without conditional writes: the check above is all there is.
            self.s3.client.complete_multipart_upload(**arguments)
        self._forget()

    def _forget(self) -> None:
        with contextlib.suppress(Exception):  # a stray record only names a finished upload
            self.s3.client.delete_object(Bucket=self.s3.bucket,
                                         Key=self.s3.record_key(self.upload_id))

    def _discard(self) -> None:
        self.s3.client.abort_multipart_upload(Bucket=self.s3.bucket, Key=self.key,
                                              UploadId=self.upload_id)
        self._forget()


