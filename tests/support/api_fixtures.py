"""Fixtures for the API tests: two tenants with a user of every kind (the client user's
client licenses tenant a's product), the app in process, and the app served by uvicorn on a
real local port. Builders live in `support.api`.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiSettings
from ops.core.config import Settings
from support.api import (
    SECRET,
    LiveServer,
    World,
    license_product,
    make_client_org,
    make_product,
    make_tenant,
    make_user,
)


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    a = make_tenant(conn, "SysTech")
    b = make_tenant(conn, "Other Co")
    acme = make_client_org(conn, a, "Acme")
    product_a = make_product(conn, a, "Tasklets")
    license_product(conn, acme, product_a)
    return World(
        tenant_a=a, tenant_b=b,
        product_a=product_a,
        product_b=make_product(conn, b, "Secret Product"),
        admin=make_user(conn, a, "admin@a.test", "admin"),
        developer=make_user(conn, a, "dev@a.test", "developer"),
        support=make_user(conn, a, "support@a.test", "support"),
        client_user=make_user(conn, a, "user@acme.test", "user", client_id=acme),
        admin_b=make_user(conn, b, "admin@b.test", "admin"),
    )


@pytest.fixture
def api_settings(settings: Settings) -> ApiSettings:
    return ApiSettings(ops=settings, secret_key=SECRET, token_ttl_seconds=3600)


@pytest.fixture
def api_client(api_settings: ApiSettings) -> Iterator[TestClient]:
    """In-process client; server errors come back as responses (so 500s are assertable)."""
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def live_server(api_settings: ApiSettings) -> Iterator[LiveServer]:
    server = LiveServer(api_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
