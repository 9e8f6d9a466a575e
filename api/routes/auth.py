"""POST /api/auth/login: email + password -> signed bearer token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.auth import LOGIN_FAILED, authenticate, issue_token, refuse_weak_key_in_production
from api.db import DbConn
from api.models import ErrorOut, LoginRequest, LoginResponse, UserOut
from api.throttle import LoginThrottle

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse, responses={
    401: {"model": ErrorOut, "description": "Wrong email or password"},
    429: {"model": ErrorOut, "description": "Too many failed logins: wait Retry-After seconds"},
})
def login(body: LoginRequest, request: Request, conn: DbConn) -> LoginResponse:
    """Exchange credentials for a token; the same 401 whether or not the email exists.

    Failed logins are throttled per (tenant, email, client address), per account and per
    client address (api.throttle).
    """
    settings = request.app.state.settings
    refuse_weak_key_in_production(conn, settings)
    throttle: LoginThrottle = request.app.state.login_throttle
    ip = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(body.email, ip, body.tenant)
    if wait:
        raise HTTPException(429, detail=f"too many failed logins: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    user = authenticate(conn, body.email, body.password, tenant_id=body.tenant)
    if user is None:
        throttle.failed(body.email, ip, body.tenant)
        raise HTTPException(401, detail=LOGIN_FAILED)
    throttle.succeeded(body.email, ip, body.tenant)
    conn.execute("UPDATE users SET last_login_at = now() WHERE id = %s", (user.id,))
    issued = issue_token(settings.secret_key, user_id=user.id, tenant_id=user.tenant_id,
                         ttl_seconds=settings.token_ttl_seconds)
    return LoginResponse(token=issued.token, expires_at=issued.expires_at,
                         user=UserOut(id=user.id, email=user.email, role=user.role,
                                      tenant_id=user.tenant_id))
