"""Settings from the environment and `.env`, shared by the CLI, Alembic and the API."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from dotenv import load_dotenv

from ops.errors import OpsError

APP_ENVS = ("development", "test", "production")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str
    backup_dir: Path
    app_env: str = "development"
    seeds_dir: Path = Path("seeds")

    @property
    def masked_url(self) -> str:
        return mask_url(self.database_url)

    def with_url(self, url: str) -> Settings:
        return replace(self, database_url=url)


def load_settings(env_file: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings; real environment variables win over `.env` entries."""
    if env_file and Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    app_env = os.environ.get("APP_ENV", "development").strip().lower() or "development"
    if app_env not in APP_ENVS:
        raise OpsError(
            f"APP_ENV={app_env!r} is not one of {', '.join(APP_ENVS)}",
            hint="Set APP_ENV to development, test or production.",
        )
    return Settings(
        database_url=database_url_from_env(),
        backup_dir=Path(os.environ.get("BACKUP_DIR") or "./backups"),
        app_env=app_env,
        seeds_dir=Path(os.environ.get("SEEDS_DIR") or "seeds"),
    )


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


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + normalise_url(url).partition("://")[2]


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for every message that names the target."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
