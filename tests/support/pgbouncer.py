"""A real PgBouncer in front of the test server, for what must work through a pooler.

Debian's package (PgBouncer 1.18, which does not pass the replication protocol on) and the
c-ares library it needs are downloaded with `apt-get download` into .cache/pgbouncer on first
use and unpacked, not installed. A test using it is skipped, with the reason, only when they
cannot be had here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

from ops.dev.cluster import free_port, server_user_ids

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE = PROJECT_ROOT / ".cache" / "pgbouncer"
PACKAGES = ("pgbouncer", "libc-ares2")


def _packages() -> list[Path]:
    """The downloaded packages; skips the test when they cannot be had."""
    found = sorted(CACHE.glob("*.deb"))
    if len(found) >= len(PACKAGES):
        return found
    apt, unpack = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or unpack is None:
        pytest.skip("PgBouncer comes from Debian's packages here: apt-get and dpkg-deb are "
                    "not on PATH")
    CACHE.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([apt, "download", *PACKAGES], cwd=CACHE, capture_output=True,
                         text=True, timeout=300)
    found = sorted(CACHE.glob("*.deb"))
    if run.returncode != 0 or len(found) < len(PACKAGES):
        pytest.skip(f"apt-get download {' '.join(PACKAGES)} failed: "
                    f"{(run.stderr or run.stdout).strip()[-300:]}")
    return found


@contextlib.contextmanager
def pgbouncer(server_url: str) -> Iterator[str]:
    """PgBouncer (session pooling, trusting the server's user) in front of `server_url`'s
    server, on 127.0.0.1; yields the URL of the same database through it."""
    target = conninfo_to_dict(server_url)
    ids = server_user_ids()  # PgBouncer refuses to run as root
    work = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    try:
        work.chmod(0o755)
        for package in _packages():
            subprocess.run(["dpkg-deb", "-x", str(package), str(work / "root")], check=True)
        binary = work / "root" / "usr" / "sbin" / "pgbouncer"
        libraries = {str(p.parent) for p in (work / "root").rglob("libcares.so*")}
        port = free_port()
        user = str(target.get("user") or "postgres")
        (work / "users.txt").write_text(f'"{user}" ""\n')
        (work / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {work / 'users.txt'}\npool_mode = session\n"
            "ignore_startup_parameters = extra_float_digits\n")
        env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(sorted(libraries))}
        with (work / "pgbouncer.log").open("wb") as log:
            process = subprocess.Popen(
                [str(binary), str(work / "pgbouncer.ini")], stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd="/",
                **({"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}))
        try:
            _wait_listening(process, port, work / "pgbouncer.log")
            parts = urlsplit(server_url)
            who = parts.netloc.rpartition("@")[0]
            yield parts._replace(netloc=f"{who}@127.0.0.1:{port}" if who
                                 else f"127.0.0.1:{port}").geturl()
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port} within 30 s")
