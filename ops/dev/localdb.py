"""The project-local PostgreSQL behind `make ... RUN=local`: a persistent cluster in .localpg/.

Driven by `tasklets-db local url|up|psql|stop|status` (ops.cli.local_cmds). A DATABASE_URL from
the environment or the --env-file (default `.env`) always wins: then nothing is started and
`url` prints it unchanged. Otherwise a newcomer with the PostgreSQL server binaries
but no Docker and no configured database still gets `make db-fresh RUN=local` working. The
cluster keeps its port in .localpg/port (54329 unless taken when it was created), so the URL
stays the same across restarts. `url` prints only the URL, to stdout, for scripts (as given:
with any password it holds); `up` and `psql` never print or pass a password on a command line.
Other messages go to stderr.

Every connection needs a password (scram-sha-256, over TCP and the unix socket alike): on a
shared machine, trust on 127.0.0.1 lets any local user in as the superuser, and from there run
programs as the developer (`COPY ... TO PROGRAM`). The password is generated when the cluster
is made and kept in the env file (`LOCALPG_PASSWORD`, the file then mode 0600); a cluster made
before that (trust) is switched to the password the next time it is used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ops.core.config import PROJECT_ROOT, normalise_url
from ops.core.envfile import env_value, generate_secret, set_env_value
from ops.core.errors import OpsError
from ops.dev.cluster import (
    SUPERUSER,
    LocalCluster,
    find_bin_dir,
    free_port,
    server_user_ids,
)

LOCAL_DIR = PROJECT_ROOT / ".localpg"
DEFAULT_PORT = 54329
DATABASE = "tasklets"
PASSWORD_KEY = "LOCALPG_PASSWORD"
SALT_KEY = "ANONYMIZE_SALT"
_PASSWORD_COMMENT = ("The project-local PostgreSQL's superuser password (make ... RUN=local),\n"
                     "generated for this checkout; .localpg/ accepts no connection without it.")
_SALT_COMMENT = "backup --anonymize's secret key, generated for this checkout."
# Every connection, TCP or unix socket, needs the password: nothing is trusted.
_PASSWORD_HBA = """\
# Written by tasklets-db: every connection needs the password (scram-sha-256), kept in the
# project's env file as LOCALPG_PASSWORD.
local   all             all                     scram-sha-256
host    all             all     127.0.0.1/32    scram-sha-256
host    all             all     ::1/128         scram-sha-256
local   replication     all                     scram-sha-256
host    replication     all     127.0.0.1/32    scram-sha-256
host    replication     all     ::1/128         scram-sha-256
"""


@dataclass(frozen=True)
class LocalDb:
    url: str
    port: int
    data_dir: Path
    started: bool  # started by this call (False: it was already running)
    secured: bool = False  # a cluster from before passwords, switched to one by this call


def configured_url(env_file: str | os.PathLike[str] | None = ".env") -> str | None:
    """DATABASE_URL from the environment, else from env_file; None when neither sets one."""
    return os.environ.get("DATABASE_URL", "").strip() or (
        env_value(Path(env_file), "DATABASE_URL") if env_file else None)


def ensure_local_db(base_dir: Path = LOCAL_DIR,
                    env_file: str | os.PathLike[str] | None = ".env") -> LocalDb:
    """Create (first time), start (when stopped) and return the project-local database; its
    password lives in `env_file` (generated there, with ANONYMIZE_SALT when that is empty, the
    first time)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    env = Path(env_file or ".env")
    with _locked(base_dir):
        cluster = _cluster(base_dir)
        cluster.password = env_value(env, PASSWORD_KEY)
        if not (cluster.data_dir / "PG_VERSION").exists():
            cluster.password = cluster.password or _new_secrets(env)
            ids = server_user_ids()
            if ids is not None:
                os.chown(base_dir, *ids)
            cluster.init()
        started = False
        if not cluster.is_running():
            try:
                cluster.start(base_dir / "server.log", durable=True)
            except OpsError as exc:
                raise OpsError(
                    f"the project-local PostgreSQL in {base_dir} did not start: {exc.message}",
                    hint=f"See {base_dir / 'server.log'}. If port {cluster.port} is taken, stop "
                    f"that server or delete {base_dir / 'port'} to pick another port.",
                ) from exc
            started = True
        secured = _trusts_connections(cluster)
        if secured:
            cluster.password = cluster.password or _new_secrets(env)
            _require_password(cluster)
        elif cluster.password is None:
            raise OpsError(f"the project-local PostgreSQL in {relative(base_dir)} needs its "
                           f"password, {PASSWORD_KEY} in {relative(env)}, which has none",
                           hint=f"Put the line back into {relative(env)}, or remove "
                           f"{relative(base_dir)} (its data goes) to start a new one.")
        _create_database(cluster)
    return LocalDb(cluster.url_for(DATABASE), cluster.port, cluster.data_dir, started, secured)


def _new_secrets(env: Path) -> str:
    """A new password, written to the env file (with a salt for anonymized snapshots when
    the file has none yet)."""
    password = generate_secret()
    set_env_value(env, PASSWORD_KEY, password, comment=_PASSWORD_COMMENT)
    if env_value(env, SALT_KEY) is None:
        set_env_value(env, SALT_KEY, generate_secret(), comment=_SALT_COMMENT)
    return password


def _trusts_connections(cluster: LocalCluster) -> bool:
    """Whether pg_hba.conf lets anyone in without a password (clusters made before them)."""
    hba = cluster.data_dir / "pg_hba.conf"
    lines = (line.split("#", 1)[0].split() for line in hba.read_text().splitlines())
    return any("trust" in words for words in lines)


def _require_password(cluster: LocalCluster) -> None:
    """Give the superuser the password and require it of every connection (the switch of a
    trusting cluster: this connection still gets in without it)."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(SUPERUSER), sql.Literal(cluster.password)))
        (cluster.data_dir / "pg_hba.conf").write_text(_PASSWORD_HBA)  # keeps its owner
        conn.execute("SELECT pg_reload_conf()")


def stop_local_db(base_dir: Path = LOCAL_DIR) -> bool:
    """Stop the project-local cluster; False when it was not running."""
    if not (base_dir / "data" / "PG_VERSION").exists():
        return False
    with _locked(base_dir):
        cluster = _cluster(base_dir)
        if not cluster.is_running():
            return False
        cluster.stop("fast")
        return True


def running_local_url(env_file: str | os.PathLike[str] | None = ".env",
                      base_dir: Path = LOCAL_DIR) -> str | None:
    """The project-local database's URL when nothing else is configured and it runs: what
    `make ... RUN=local` uses, found the same way, so the bare CLI talks to that database
    too. None otherwise (never starts it)."""
    if configured_url(env_file) or not (base_dir / "data" / "PG_VERSION").exists():
        return None
    return ensure_local_db(base_dir, env_file).url if local_db_running(base_dir) else None


def local_db_running(base_dir: Path = LOCAL_DIR) -> bool:
    return (base_dir / "data" / "PG_VERSION").exists() and _cluster(base_dir).is_running()


def _cluster(base_dir: Path) -> LocalCluster:
    return LocalCluster(base_dir / "data", recorded_port(base_dir), find_bin_dir())


def recorded_port(base_dir: Path) -> int:
    """The port written when the cluster was created; chosen (and recorded) on first use."""
    port_file = base_dir / "port"
    if port_file.is_file():
        text = port_file.read_text().strip()
        if text.isdigit():
            return int(text)
    port = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else free_port()
    port_file.write_text(f"{port}\n")
    return port


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def _locked(base_dir: Path) -> Iterator[None]:
    """Serialise concurrent `make` runs that would otherwise init or start the cluster twice."""
    with open(base_dir / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create_database(cluster: LocalCluster) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DATABASE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def url_to_use(env_file: str | os.PathLike[str] | None) -> tuple[str, LocalDb | None]:
    """The configured DATABASE_URL, else the project-local database's (started when needed):
    (url, the local database or None)."""
    url = configured_url(env_file)
    if url:
        return url, None
    db = ensure_local_db(env_file=env_file)
    return db.url, db


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def psql_command(url: str, psql: str = "psql") -> tuple[list[str], dict[str, str]]:
    """argv and environment for psql against url: the password goes in PGPASSWORD, never in
    argv, where `ps` shows it to every user of the machine. Any DSN form libpq accepts."""
    try:
        params = conninfo_to_dict(normalise_url(url))
    except psycopg.ProgrammingError:
        # psycopg's message quotes the string, password included: say only what is wrong
        raise OpsError("DATABASE_URL is not a connection string psql can use",
                       hint="Use postgresql://USER:PASSWORD@HOST:PORT/DB or "
                       "`host=... user=... dbname=...`.") from None
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return [psql, "-d", make_conninfo("", **params)], env


def exec_psql(url: str) -> None:
    """Replace this process by psql against url (the password in its environment only)."""
    psql = shutil.which("psql") or str(find_bin_dir() / "psql")
    argv, env = psql_command(url, psql)
    os.execve(psql, argv, env)
