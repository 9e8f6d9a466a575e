"""API settings: the ops Settings plus the token secret and lifetime, read from the environment.

A production database (APP_ENV=production, or the database's environment marker) is never
served with a missing, published or guessable SECRET_KEY: anyone could mint tokens with it.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

from ops.core.config import PROJECT_ROOT, Settings, load_settings
from ops.core.errors import OpsError

DEFAULT_TOKEN_TTL_SECONDS = 12 * 3600
MIN_SECRET_KEY_BITS = 128
# Values that appear in examples and templates; never acceptable in production.
EXAMPLE_KEY_MARKERS = ("change-me", "changeme", "example", "secret-key", "dev-secret", "insecure")
# Read rather than copied: whatever key the template publishes today is refused.
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"

log = logging.getLogger("api")


@dataclass(frozen=True)
class ApiSettings:
    ops: Settings
    secret_key: str
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    key_generated: bool = False  # no SECRET_KEY was set: a random key for this process

    @property
    def app_env(self) -> str:
        return self.ops.app_env

    @cached_property
    def key_problem(self) -> str | None:
        """Why this key must not sign tokens for a production database; None when it may."""
        return "SECRET_KEY is not set" if self.key_generated else secret_key_problem(
            self.secret_key)


def load_api_settings(env_file: str | None = ".env") -> ApiSettings:
    """Settings for the API process; raises OpsError for an unfit key under APP_ENV=production.

    (A database whose environment marker says production is checked when the app starts
    and on every request: api.auth.refuse_weak_key_in_production.)
    """
    ops_settings = load_settings(env_file)
    value = os.environ.get("SECRET_KEY", "").strip()
    if ops_settings.app_env == "production":
        refuse_unfit_key(secret_key_problem(value), "APP_ENV=production")
    if not value:
        log.warning("SECRET_KEY is not set: using a random key, tokens end with this process")
    return ApiSettings(
        ops=ops_settings,
        secret_key=value or secrets.token_urlsafe(48),
        token_ttl_seconds=token_ttl_from(os.environ.get("TOKEN_TTL", "")),
        key_generated=not value,
    )


def refuse_unfit_key(problem: str | None, why_production: str) -> None:
    """Raise the one-line refusal to serve production with an unfit SECRET_KEY."""
    if problem is None:
        return
    raise OpsError(f"{problem}; the API will not serve a production database with it "
                   f"({why_production})",
                   hint="Set SECRET_KEY to a long random value, e.g. "
                        '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.')


def secret_key_problem(value: str) -> str | None:
    """Why `value` is unfit to sign production tokens (empty, published, guessable); None
    when it is fit. The reason never quotes the key."""
    if not value:
        return "SECRET_KEY is not set"
    lowered = value.lower()
    if value in published_keys() or any(m in lowered for m in EXAMPLE_KEY_MARKERS):
        return "SECRET_KEY looks like an example value"
    # `_` and `-` separate words in made-up keys (replace_with_your_own_...): not a class.
    classes = {_char_class(c) for c in value if c not in "_-"}
    if len(classes) <= 1:
        return "SECRET_KEY is made of a single kind of character"
    bits = estimated_bits(value)
    if bits < MIN_SECRET_KEY_BITS:
        return (f"SECRET_KEY has about {bits:.0f} bits of entropy; at least "
                f"{MIN_SECRET_KEY_BITS} are needed")
    return None


def estimated_bits(value: str) -> float:
    """Shannon entropy of the key's own character distribution times its length.

    Stricter than length x log2(charset): 32 x `a` scores 0, a random urlsafe key ~5.2
    bits a character.
    """
    counts = Counter(value)
    return -sum(n * math.log2(n / len(value)) for n in counts.values())


def _char_class(char: str) -> str:
    if char.isdigit():
        return "digit"
    if char.isalpha():
        return "upper" if char.isupper() else "lower"
    return "other"


def published_keys() -> set[str]:
    """The SECRET_KEY values the project's .env.example publishes (empty when it is absent)."""
    try:
        lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {line.partition("=")[2].strip().strip("'\"") for line in lines
            if line.startswith("SECRET_KEY=")} - {""}


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
