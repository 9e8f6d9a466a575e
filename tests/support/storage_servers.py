"""Fixtures sharing one real storage server of each kind per session (see support.storage):
test modules load them with `pytest_plugins = ["support.storage_servers"]`. Every test gets a prefix
of its own in one bucket; tests that stop a server start a private one instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.storage import Backend, Server, start_server, use_server_env

_SHARED: dict[str, Server] = {}


@pytest.fixture(scope="session")
def storage_servers() -> Iterator[Callable[[str], Server]]:
    """The session's shared server of a kind, started on first use, stopped at session end."""

    def get(kind: str) -> Server:
        if kind not in _SHARED:
            _SHARED[kind] = start_server(kind)
        return _SHARED[kind]

    yield get
    for server in _SHARED.values():
        server.stop()
    _SHARED.clear()


def storage_backend(kind: str, servers: Callable[[str], Server],
                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    if kind == "file":
        use_server_env(monkeypatch, None)
        return Backend(kind, str(tmp_path / "backups"), None)
    server = servers(kind)
    use_server_env(monkeypatch, server)
    return Backend(kind, server.location(f"t-{uuid.uuid4().hex[:10]}"), server)


@pytest.fixture(params=["file", "s3", "gs", "az"])
def backend(request: pytest.FixtureRequest, storage_servers: Callable[[str], Server],
            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    """Each storage kind in turn, at a prefix of this test's own."""
    return storage_backend(request.param, storage_servers, monkeypatch, tmp_path)


@pytest.fixture(params=["s3", "gs", "az"])
def cloud_backend(request: pytest.FixtureRequest, storage_servers: Callable[[str], Server],
                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    """Each remote storage kind in turn, at a prefix of this test's own."""
    return storage_backend(request.param, storage_servers, monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def age_cli() -> str:
    """The stock `age` binary, installed with apt (Debian package `age`) when missing."""
    found = shutil.which("age")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        quiet = {"capture_output": True, "timeout": 300}
        install = ["apt-get", "install", "-y", "-qq", "age"]
        if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
            subprocess.run(["apt-get", "update", "-qq"], **quiet)  # type: ignore[call-overload]
            subprocess.run(install, **quiet)  # type: ignore[call-overload]
        found = shutil.which("age")
    if found is None:
        pytest.skip("the age CLI is not installed and could not be installed with apt-get "
                    "(needs root and the Debian package `age`)")
    return found
