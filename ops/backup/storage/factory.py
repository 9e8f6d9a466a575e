"""Where backups live: a local directory, or a prefix in S3, Google Cloud Storage or Azure Blob.

`open_store(location)` gives a `Store` (ops.backup.storage.interface; one module per backend
beside this one); the code that writes and reads backups talks only to it.

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
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ops.backup.storage.azure import AzureStore
from ops.backup.storage.gcs import GCSStore
from ops.backup.storage.interface import Store, check_name
from ops.backup.storage.local import LocalStore
from ops.backup.storage.remote import CREDENTIAL_HINTS, RemoteStore, shown
from ops.backup.storage.s3 import S3Store
from ops.core.errors import OpsError
from ops.core.output import quiet_library_logs

ACCEPTED_FORMS = ("s3://bucket/prefix, gs://bucket/prefix, az://container/prefix "
                  "(or azure://), file:///path, or a plain path")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)
_ALMOST_URL = re.compile(r"^(?P<scheme>s3|gs|gcs|az|azure|file|https?)(:/?|//)(?!/)", re.I)


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
    if isinstance(location, Path):
        return LocalStore(location)
    text = location.strip()
    match = _URL.match(text)
    if match is None:
        if _ALMOST_URL.match(text):
            raise OpsError(f"{shown(text)} looks like a storage URL but is not one",
                           hint=f"Use one of: {ACCEPTED_FORMS}.")
        return LocalStore(Path(text))
    scheme, rest = match["scheme"].lower(), match["rest"]
    quiet_library_logs("urllib3", "botocore", "boto3", "s3transfer", "azure", "google")
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise OpsError(f"{shown(text)} is not a local file URL (file:///absolute/path)",
                           hint=f"Use one of: {ACCEPTED_FORMS}.")
        return LocalStore(Path(unquote(parts.path)))
    makers: dict[str, type[RemoteStore]] = {
        "s3": S3Store, "gs": GCSStore, "az": AzureStore, "azure": AzureStore}
    if scheme not in makers:
        raise OpsError(f"unknown storage scheme {scheme}:// in {shown(text)}",
                       hint=f"Use one of: {ACCEPTED_FORMS}.")
    bucket, _, prefix = rest.partition("/")
    what = "container" if scheme in ("az", "azure") else "bucket"
    if "@" in bucket or ":" in bucket:
        # Never echo it: what sits before "@" is likely a secret.
        raise OpsError(f"the {scheme}:// location carries credentials or a port, which do "
                       "not belong there", hint=CREDENTIAL_HINTS[makers[scheme].scheme])
    if not bucket:
        raise OpsError(f"{shown(text)} names no {what}", hint=f"Use one of: {ACCEPTED_FORMS}.")
    if "?" in text or "#" in text:
        raise OpsError(f"{shown(text)} may not carry a ?query or #fragment",
                       hint=f"Use one of: {ACCEPTED_FORMS}.")
    return makers[scheme](bucket, prefix.strip("/"))


def open_object(location: str | Path) -> tuple[Store, str]:
    """The store holding one object (`s3://bucket/dir/backup-....json`, a file path or URL)
    and the object's name in it, for options that take a single backup."""
    if isinstance(location, Path):
        return LocalStore(location.parent), check_name(location.name)
    text = location.strip()
    match = _URL.match(text)
    if match is None and not _ALMOST_URL.match(text):
        path = Path(text)
        return LocalStore(path.parent), check_name(path.name)
    return open_store(text).parent_and_name()  # refuses what is not a location at all
