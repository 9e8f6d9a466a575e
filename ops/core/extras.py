"""Optional dependencies: the cloud SDKs and the API stack are pyproject extras, so an install
that backs up to a local directory does not carry three cloud SDKs and a web server. A command
that reaches a missing one is told which extra to install, in one line, by `missing_extra`."""

from __future__ import annotations

from ops.core.errors import OpsError

# Top-level module → (the extra that installs it, what needs it)
EXTRAS = {
    "boto3": ("s3", "S3 storage (s3://)"),
    "botocore": ("s3", "S3 storage (s3://)"),
    "google": ("gcs", "Google Cloud Storage (gs://)"),
    "azure": ("azure", "Azure Blob storage (az://)"),
    "fastapi": ("api", "the HTTP server (the API and `testdb serve`)"),
    "starlette": ("api", "the HTTP server (the API and `testdb serve`)"),
    "uvicorn": ("api", "the HTTP server (the API and `testdb serve`)"),
}


class MissingExtra(OpsError):
    """An optional dependency this command needs is not installed."""


def missing_extra(exc: BaseException) -> MissingExtra | None:
    """The one-line error for an import of an uninstalled extra; None for any other error."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    found = EXTRAS.get(exc.name.split(".")[0])
    if found is None:
        return None
    extra, needed_by = found
    return MissingExtra(
        f"{needed_by} needs the Python package {exc.name.split('.')[0]}, which is not installed.",
        hint=f"Install the extra: pip install 'tasklets-ops[{extra}]' "
             "(or '[all]'; `make venv` and the Docker image install everything).")
