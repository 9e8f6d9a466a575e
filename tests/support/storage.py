"""Real storage servers for the storage tests, each on 127.0.0.1 at a free port: moto (S3, with
request signing enforced), gcp-storage-emulator (GCS) and Azurite (Azure Blob, installed with
npm into .cache/azurite on first use). The fixtures that share them are in `support.storage_servers`
(test modules load it with `pytest_plugins = ["support.storage_servers"]`); helpers live here.

A backend is skipped, with the reason, only when its server cannot be installed here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE_DIR = PROJECT_ROOT / ".cache" / "azurite"
AZURITE_VERSION = "3"  # npm range: the newest 3.x
AZURITE_BIN = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
BUCKET = "tasklets-backups"
# Azurite's well-known development account (published in Azure's docs; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
# Variables that would steer a client away from the test servers.
CLOUD_VARIABLES = [
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
    "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_USE_EMULATOR",
]


@dataclass
class Server:
    """A running server and the variables a client needs to reach it."""
    kind: str  # "s3", "gs" or "az"
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    workdir: Path  # its log and any files; removed when it stops

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def location(self, prefix: str, bucket: str = BUCKET) -> str:
        return f"{self.kind}://{bucket}/{prefix}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(command: list[str], port: int, what: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a server in a directory of its own (its output goes to server.log there: a pipe
    nobody reads would stall it, a closed one would kill it) and wait until it listens."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{what}-"))
    env = {k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES}
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (workdir / "server.log").read_text(errors="replace")[-2000:]
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"{what} exited with {process.returncode}: {output}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return process, workdir
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within 60 s")


def _missing_module(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return (f"{module} is not installed (it comes with the test extra: "
                ".venv/bin/pip install -e '.[test]')")
    return None


def start_s3() -> Server:
    """moto's standalone server; after the test user and bucket exist, every request must be
    signed with that user's key (moto checks signatures only once auth is switched on)."""
    port = free_port()
    process, workdir = _spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, "moto")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        setup = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="backups")
        iam.put_user_policy(UserName="backups", PolicyName="all", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'))
        key = iam.create_access_key(UserName="backups")["AccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()
    except BaseException:
        Server("s3", process, port, {}, workdir).stop()
        raise
    return Server("s3", process, port, workdir=workdir, env={
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        # Connection refused is retried once, not for the default several seconds.
        "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard",
    })


def start_gcs() -> Server:
    port = free_port()
    process, workdir = _spawn(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port",
         str(port), "--in-memory", "--default-bucket", BUCKET, "-q"], port, "gcs-emulator")
    return Server("gs", process, port, {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"},
                  workdir)


def azurite_problem() -> str | None:
    """Why Azurite cannot run here, after installing it into .cache/azurite when missing."""
    if AZURITE_BIN.exists():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "Azurite needs node and npm (install Node.js 18+), which are not on PATH"
    AZURITE_DIR.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([npm, "install", "--prefix", str(AZURITE_DIR), "--no-audit",
                          "--no-fund", "--loglevel=error", f"azurite@{AZURITE_VERSION}"],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0 or not AZURITE_BIN.exists():
        return f"npm could not install azurite: {(run.stderr or run.stdout).strip()[-500:]}"
    return None


def azure_connection_string(port: int, key: str = AZURITE_KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


def start_azure() -> Server:
    port = free_port()
    process, workdir = _spawn(
        [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--inMemoryPersistence", "--silent", "--skipApiVersionCheck"], port, "azurite")
    server = Server("az", process, port, {"AZURE_STORAGE_CONNECTION_STRING":
                                          azure_connection_string(port)}, workdir)
    try:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(server.env["AZURE_STORAGE_CONNECTION_STRING"]) \
            .create_container(BUCKET)
    except BaseException:
        server.stop()
        raise
    return server


_STARTERS: dict[str, tuple[Callable[[], str | None], Callable[[], Server]]] = {
    "s3": (lambda: _missing_module("moto.server") or _missing_module("boto3"), start_s3),
    "gs": (lambda: _missing_module("gcp_storage_emulator"), start_gcs),
    "az": (azurite_problem, start_azure),
}


def start_server(kind: str) -> Server:
    """A private server of `kind`; the test skips (with the reason) when it cannot run here."""
    problem_of, start = _STARTERS[kind]
    problem = problem_of()
    if problem:
        pytest.skip(problem)
    return start()


@dataclass
class Backend:
    """One kind of storage as a test sees it: a fresh location and its server."""
    kind: str  # "file", "s3", "gs" or "az"
    location: str
    server: Server | None


def use_server_env(monkeypatch: pytest.MonkeyPatch, server: Server | None) -> None:
    """Point every client at `server` only: the host's own cloud settings are cleared."""
    for name in CLOUD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in (server.env if server else {}).items():
        monkeypatch.setenv(name, value)


def child_env() -> dict[str, str]:
    """The environment for a child process: this one's (with the test's variables), plus the
    project on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    return env
