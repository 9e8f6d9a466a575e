"""Authentication: bcrypt password checks and signed, expiring bearer tokens.

A token is `v1.<payload>.<signature>`: the payload is base64url JSON {sub, tid, exp} and the
signature an HMAC-SHA256 under a key derived from SECRET_KEY. That is all a bearer token needs
here (one issuer, one audience), without a JWT dependency. Every request re-reads the user, so
a deactivated user or a changed role takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import bcrypt
import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.config import ApiSettings, refuse_unfit_key
from api.db import DbConn
from api.queries import Scope, rows_as_dicts
from ops.core.db import connection
from ops.core.errors import OpsError
from ops.core.guard import PRODUCTION, production_reasons
from ops.core.vocabulary import BCRYPT_ROUNDS

TOKEN_PREFIX = "v1"
WRITER_ROLES = ("admin", "developer")
# bcrypt ignores bytes past 72 (and bcrypt>=5 refuses them): compare the same prefix it hashed.
BCRYPT_MAX_BYTES = 72
# Same cost as the seeded users' hashes, so an unknown email costs as long as a wrong password.
DUMMY_HASH = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=BCRYPT_ROUNDS))
# A hash bcrypt accepts; anything else would be refused before any hashing work.
BCRYPT_HASH = re.compile(r"\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}")
LOGIN_FAILED = "invalid email or password"
MISSING_TOKEN = "missing bearer token"
TOKEN_REFUSED = "invalid or expired token"
WEAK_KEY_REFUSED = ("the server's SECRET_KEY is not fit for a production database; requests "
                    "are refused until an operator sets a strong one")

log = logging.getLogger("api")


def check_password(password: str, stored_hash: str | None) -> bool:
    """Exactly one bcrypt check: against the stored hash, or against a dummy when there is no
    account (or its hash is malformed), so neither the work nor its timing tells."""
    candidate = password.encode("utf-8")[:BCRYPT_MAX_BYTES]
    if stored_hash and BCRYPT_HASH.fullmatch(stored_hash):
        return bcrypt.checkpw(candidate, stored_hash.encode("ascii"))
    bcrypt.checkpw(candidate, DUMMY_HASH)
    return False


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    tenant_id: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, signed_part: str) -> str:
    key = hmac.new(secret_key.encode(), b"tasklets-api-token", hashlib.sha256).digest()
    return _b64(hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest())


def issue_token(secret_key: str, *, user_id: int, tenant_id: int, ttl_seconds: int,
                now: float | None = None) -> IssuedToken:
    expires = int((time.time() if now is None else now) + ttl_seconds)
    payload = _b64(json.dumps({"sub": user_id, "tid": tenant_id, "exp": expires},
                              separators=(",", ":")).encode())
    signed = f"{TOKEN_PREFIX}.{payload}"
    return IssuedToken(token=f"{signed}.{_signature(secret_key, signed)}",
                       expires_at=datetime.fromtimestamp(expires, UTC))


def verify_token(secret_key: str, token: str, *, now: float | None = None) -> TokenClaims | None:
    """The claims of a token signed with this key and not yet expired; None otherwise."""
    # Headers arrive as latin-1: a token with other characters was never issued here, and
    # hmac.compare_digest refuses non-ASCII strings.
    if not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(secret_key, signed), parts[2]):
        return None
    try:
        data: Any = json.loads(_unb64(parts[1]))
        claims = TokenClaims(user_id=int(data["sub"]), tenant_id=int(data["tid"]),
                             expires=int(data["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    if claims.expires <= (time.time() if now is None else now):
        return None
    return claims


@dataclass(frozen=True)
class CurrentUser:
    id: int
    tenant_id: int
    email: str
    role: str
    user_type: str
    client_id: int | None = None

    @property
    def can_write(self) -> bool:
        return self.user_type == "internal" and self.role in WRITER_ROLES

    @property
    def is_importer(self) -> bool:
        """Internal admins: the role `import beads --via api` uses, which may record other
        users as authors and the tracker's creation times."""
        return self.user_type == "internal" and self.role == "admin"

    @property
    def scope(self) -> Scope:
        """Internal users read the whole tenant; client users what their client licenses."""
        if self.user_type == "internal":
            return Scope(self.tenant_id)
        # The schema requires a client for client users; without one they would see nothing.
        return Scope(self.tenant_id, client_id=self.client_id or 0)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail,
                         headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="Token from POST /api/auth/login")


def current_user(request: Request, conn: DbConn,
                 credentials: Annotated[HTTPAuthorizationCredentials | None,
                                        Depends(_bearer)]) -> CurrentUser:
    refuse_weak_key_in_production(conn, request.app.state.settings)
    if credentials is None:
        raise _unauthorized(MISSING_TOKEN)
    claims = verify_token(request.app.state.settings.secret_key, credentials.credentials)
    if claims is None:
        raise _unauthorized(TOKEN_REFUSED)
    row = load_active_user(conn, claims.user_id, claims.tenant_id)
    if row is None:
        raise _unauthorized(TOKEN_REFUSED)
    return row


def refuse_weak_key_at_startup(settings: ApiSettings) -> None:
    """Raise OpsError when the key is unfit and the target is production: APP_ENV says so,
    or the database's environment marker does. An unreachable database is left to the
    per-request check (refuse_weak_key_in_production)."""
    if settings.key_problem is None:
        return
    if settings.app_env == PRODUCTION:
        refuse_unfit_key(settings.key_problem, "APP_ENV=production")
    try:
        with connection(settings.ops, autocommit=True) as conn:
            reasons = production_reasons(conn, settings.ops)
    except OpsError:
        log.warning("database unreachable at start-up: the SECRET_KEY is checked against its "
                    "environment marker on every request")
        return
    if reasons:
        refuse_unfit_key(settings.key_problem, "; ".join(reasons))


def refuse_weak_key_in_production(conn: psycopg.Connection, settings: ApiSettings) -> None:
    """503 while an unfit key would sign or accept tokens for a production database (the
    marker may have been set, or the database unreachable, when the API started)."""
    if settings.key_problem and production_reasons(conn, settings.ops):
        log.error("refusing requests: %s and the database is production", settings.key_problem)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=WEAK_KEY_REFUSED)


def load_active_user(conn: psycopg.Connection, user_id: int, tenant_id: int) -> CurrentUser | None:
    row = rows_as_dicts(conn).execute(
        "SELECT id, tenant_id, email, role::text AS role, user_type::text AS user_type, "
        "client_id FROM users WHERE id = %s AND tenant_id = %s AND is_active",
        (user_id, tenant_id)).fetchone()
    return CurrentUser(**row) if row else None


def writer(user: Annotated[CurrentUser, Depends(current_user)]) -> CurrentUser:
    if not user.can_write:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="only internal admin or developer users may write")
    return user


Reader = Annotated[CurrentUser, Depends(current_user)]
Writer = Annotated[CurrentUser, Depends(writer)]


def authenticate(conn: psycopg.Connection, email: str, password: str,
                 tenant_id: int | None = None) -> CurrentUser | None:
    """The active user with this email and password, or None; one bcrypt check either way.

    Emails are unique per tenant, not globally: `tenant_id` picks the tenant; without it the
    oldest active account with the email is the only candidate.
    """
    row = rows_as_dicts(conn).execute(
        "SELECT id, tenant_id, email, role::text AS role, user_type::text AS user_type, "
        "client_id, password_hash FROM users WHERE lower(email) = lower(%s) AND is_active "
        "AND (%s::bigint IS NULL OR tenant_id = %s) ORDER BY created_at, id LIMIT 1",
        (email, tenant_id, tenant_id)).fetchone()
    stored = row.pop("password_hash") if row else None
    matched = check_password(password, stored)  # also when there is no row
    return CurrentUser(**row) if row and matched else None
