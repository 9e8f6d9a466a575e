"""Settings from the environment and `.env`, shared by the CLI, Alembic and the API."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ops.core.defaults import COMPRESSIONS, DEFAULT_COMPRESSION
from ops.core.errors import OpsError

APP_ENVS = ("development", "test", "production")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# Retention rules (BACKUP_KEEP_LAST, _DAILY, ...), newest-first grandfather-father-son.
KEEP_RULES = ("last", "daily", "weekly", "monthly")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    database_url: str
    backup_dir: Path | str  # a directory, or a bucket URL (s3://, gs://, az://, file://)
    app_env: str = "development"
    seeds_dir: Path = Path("seeds")
    # False when APP_ENV was not set at all (app_env is then the development default): only
    # an explicit development may unlock development-only conveniences.
    app_env_set: bool = True
    backup_compress: str | None = None  # "zstd" or "gzip"; None: backups are plain JSON
    backup_jobs: int | None = None  # None: 2 into a directory, 1 into a bucket
    backup_encrypt_to: str = ""  # age recipients, as given (empty: backups are not encrypted)
    backup_identity_file: Path | None = None  # what decrypts them (restore, verify)
    # The scheduler (ops.schedule) and what it drives: when, what to keep, whom to tell
    backup_schedule: str = ""  # "6h" or a cron expression; empty: `schedule` needs --every/--cron
    backup_keep: dict[str, int] = field(default_factory=dict)  # "last"/"daily"/... -> how many
    backup_drill_every: str = ""  # how often the scheduler drills a restore (empty: never)
    backup_notify_url: str = ""
    backup_max_age: str = ""  # what `backups check` allows (default 26h)
    scratch_database_url: str = ""  # where restore drills restore (default: a new database)
    # The key of `backup --anonymize` (ops.anonymize.mask): never printed nor written out.
    anonymize_salt: str = field(default="", repr=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.database_url)

    def with_url(self, url: str) -> Settings:
        return replace(self, database_url=url)


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings; real environment variables win over `.env` entries."""
    if env_file and Path(env_file).is_file():
        from dotenv import load_dotenv  # here: it loads `logging`, ~10 ms of every `--help`

        load_dotenv(env_file, override=False)
    raw_env = os.environ.get("APP_ENV", "").strip().lower()
    app_env = raw_env or "development"
    if app_env not in APP_ENVS:
        raise OpsError(
            f"APP_ENV={app_env!r} is not one of {', '.join(APP_ENVS)}",
            hint="Set APP_ENV to development, test or production.",
        )
    return Settings(
        database_url=database_url_from_env(),
        backup_dir=backup_location(os.environ.get("BACKUP_DIR") or "./backups"),
        app_env=app_env,
        seeds_dir=Path(os.environ.get("SEEDS_DIR") or "seeds"),
        app_env_set=bool(raw_env),
        backup_compress=_compression("BACKUP_COMPRESS"),
        backup_jobs=_positive_int("BACKUP_JOBS"),
        backup_encrypt_to=os.environ.get("BACKUP_ENCRYPT_TO", ""),
        backup_identity_file=Path(identity) if (
            identity := os.environ.get("BACKUP_IDENTITY_FILE", "").strip()) else None,
        backup_schedule=os.environ.get("BACKUP_SCHEDULE", "").strip(),
        backup_keep={rule: count for rule in KEEP_RULES
                     if (count := _positive_int(f"BACKUP_KEEP_{rule.upper()}")) is not None},
        backup_drill_every=os.environ.get("BACKUP_DRILL_EVERY", "").strip(),
        backup_notify_url=os.environ.get("BACKUP_NOTIFY_URL", "").strip(),
        backup_max_age=os.environ.get("BACKUP_MAX_AGE", "").strip(),
        scratch_database_url=normalise_url(os.environ.get("SCRATCH_DATABASE_URL", "").strip()),
        anonymize_salt=os.environ.get("ANONYMIZE_SALT", ""),
    )


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise OpsError(f"{name}={value!r} is neither true nor false",
                   hint=f"Set {name} to 1 or 0 (true/false, yes/no, on/off).")


def _compression(name: str) -> str | None:
    """A compression by name, or a flag: true picks the default one, false none."""
    value = os.environ.get(name, "").strip().lower()
    if value in COMPRESSIONS:
        return value
    if value in _TRUE or value in _FALSE:
        return DEFAULT_COMPRESSION if value in _TRUE else None
    raise OpsError(f"{name}={value!r} is not a compression",
                   hint=f"Set {name} to {' or '.join(COMPRESSIONS)}, 1 (the default: "
                   f"{DEFAULT_COMPRESSION}) or 0 (none).")


def _positive_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise OpsError(f"{name}={value!r} is not a whole number of at least 1",
                       hint=f"Set {name} to 1, 2, 4, ... or leave it empty for the default.")
    return int(value)


def backup_location(value: str) -> Path | str:
    """BACKUP_DIR as given: what starts like a URL (`scheme:`) stays text for the storage
    module to read - or to refuse with one line, typos included - and a path is a Path."""
    value = value.strip()
    return value if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", value) else Path(value)


def database_url_from_env() -> str:
    """DATABASE_URL, or one assembled from the POSTGRES_* variables."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return normalise_url(url)
    if not any(os.environ.get(k) for k in ("POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER")):
        raise OpsError(
            "no database configured: DATABASE_URL is not set",
            hint="Set DATABASE_URL (or POSTGRES_HOST/PORT/USER/PASSWORD/DB), e.g. "
            "`cp .env.example .env`.",
        )
    user = quote(os.environ.get("POSTGRES_USER", "postgres"), safe="")
    password = os.environ.get("POSTGRES_PASSWORD", "")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = os.environ.get("POSTGRES_HOST", "localhost")
    port = os.environ.get("POSTGRES_PORT", "5432")
    db = quote(os.environ.get("POSTGRES_DB", "tasklets"), safe="")
    return f"postgresql://{auth}@{host}:{port}/{db}"


def normalise_url(url: str) -> str:
    """Accept SQLAlchemy-style schemes (postgresql+psycopg://) and return a libpq URL."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith(("postgresql+", "postgres+")):
        return f"postgresql://{rest}"
    if scheme == "postgres":
        return f"postgresql://{rest}"
    return url


def url_with_database(url: str, dbname: str) -> str:
    """The same server, user and options with another database, in the form given (a URL
    stays a URL: Alembic's engine takes only URLs)."""
    if not url.startswith("postgresql://"):
        from psycopg.conninfo import make_conninfo  # here: psycopg is slow to import

        return make_conninfo(url, dbname=dbname)
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path=f"/{quote(dbname, safe='')}", query=query))


def mask_url(url: str) -> str:
    """The connection string with any password replaced by ***, for every message naming it.

    Parsed by libpq's own parser, so every form is covered: URLs (also `?password=` and
    several hosts) and `key=value` strings. What libpq cannot parse is not echoed at all:
    its error text may quote the password.
    """
    # Imported here: psycopg takes 0.1-0.2 s to import; every command's start-up loads this.
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        info = {key: str(value) for key, value in conninfo_to_dict(url).items()
                if value is not None}
    except ProgrammingError:
        return "<unparseable connection string>"
    if "password" in info:
        info["password"] = "***"
    if not url.lstrip().startswith(("postgresql://", "postgres://")):
        return make_conninfo(**info)
    user = info.pop("user", None)
    password = info.pop("password", None)
    dbname = info.pop("dbname", None)
    hosts = (info.pop("host", None) or "").split(",")
    ports = (info.pop("port", None) or "").split(",")
    query: dict[str, str] = {}
    if any(h.startswith("/") for h in hosts):  # socket directories go in the query
        query["host"] = ",".join(hosts)
        hosts = [""]
    netloc = ",".join(_host_port(h, ports[min(i, len(ports) - 1)]) for i, h in enumerate(hosts))
    if user is not None:
        auth = quote(user, safe="") + (f":{password}" if password else "")
        netloc = f"{auth}@{netloc}"
    query.update(info)
    tail = f"?{urlencode(query, safe='/,')}" if query else ""
    return f"postgresql://{netloc}/{quote(dbname or '', safe='')}{tail}"


def _host_port(host: str, port: str) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host
