"""API settings: the ops Settings plus the token secret and lifetime, read from the environment.

In production the API refuses to start without a real SECRET_KEY: a forgotten or copied
example key would let anyone mint tokens.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

from ops.config import Settings, load_settings
from ops.errors import OpsError

DEFAULT_TOKEN_TTL_SECONDS = 12 * 3600
MIN_SECRET_KEY_LENGTH = 32
# Values that appear in examples and templates; never acceptable in production.
EXAMPLE_KEY_MARKERS = ("change-me", "changeme", "example", "secret-key", "dev-secret", "insecure")

log = logging.getLogger("api")


@dataclass(frozen=True)
class ApiSettings:
    ops: Settings
    secret_key: str
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS

    @property
    def app_env(self) -> str:
        return self.ops.app_env


def load_api_settings(env_file: str | None = ".env") -> ApiSettings:
    """Settings for the API process; raises OpsError for a missing production key."""
    ops_settings = load_settings(env_file)
    return ApiSettings(
        ops=ops_settings,
        secret_key=secret_key_for(ops_settings.app_env, os.environ.get("SECRET_KEY", "")),
        token_ttl_seconds=token_ttl_from(os.environ.get("TOKEN_TTL", "")),
    )


def secret_key_for(app_env: str, value: str) -> str:
    """The signing key; outside production a missing key becomes a random per-process one."""
    value = value.strip()
    if app_env == "production":
        if not value:
            raise OpsError("SECRET_KEY is not set; the API will not start in production without it",
                           hint='Set SECRET_KEY to a long random value, e.g. '
                                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.')
        if is_example_key(value):
            raise OpsError("SECRET_KEY looks like an example value; refusing to start in "
                           "production",
                           hint=f"Use a random value of at least {MIN_SECRET_KEY_LENGTH} "
                                "characters.")
        return value
    if not value:
        log.warning("SECRET_KEY is not set: using a random key, tokens end with this process")
        return secrets.token_urlsafe(48)
    return value


def is_example_key(value: str) -> bool:
    lowered = value.lower()
    return len(value) < MIN_SECRET_KEY_LENGTH or any(m in lowered for m in EXAMPLE_KEY_MARKERS)


def token_ttl_from(value: str) -> int:
    value = value.strip()
    if not value:
        return DEFAULT_TOKEN_TTL_SECONDS
    try:
        ttl = int(value)
    except ValueError:
        ttl = 0
    if ttl <= 0:
        raise OpsError(f"TOKEN_TTL={value!r} is not a positive number of seconds",
                       hint="Set TOKEN_TTL to the token lifetime in seconds, e.g. 43200.")
    return ttl
