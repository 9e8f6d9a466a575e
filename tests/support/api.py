"""Builders for the API tests: tenants, users, products, tokens, a live uvicorn server.

The fixtures built on them live in `support.api_fixtures` (test modules load it with
`pytest_plugins = ["support.api_fixtures"]` and import builders from here).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import bcrypt
import httpx
import psycopg
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiSettings
from ops.seed.helpers import tenant_slug

PASSWORD = "Correct-Horse-1"
SECRET = "tZ4q7uWbV0yR2mN8cJ5hL1pX6sD9fG3kA0eQwErTyUi"


def make_tenant(conn: psycopg.Connection, name: str) -> int:
    return conn.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
                        (name, tenant_slug(conn, name))).fetchone()[0]


def make_client_org(conn: psycopg.Connection, tenant_id: int, name: str) -> int:
    return conn.execute("INSERT INTO clients (tenant_id, name) VALUES (%s, %s) RETURNING id",
                        (tenant_id, name)).fetchone()[0]


def make_user(conn: psycopg.Connection, tenant_id: int, email: str, role: str = "admin", *,
              password: str = PASSWORD, client_id: int | None = None,
              active: bool = True) -> int:
    user_type = "client" if client_id else "internal"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return conn.execute(
        "INSERT INTO users (tenant_id, client_id, email, name, password_hash, user_type, role,"
        " is_active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant_id, client_id, email, email.split("@")[0], hashed, user_type, role, active),
    ).fetchone()[0]


def make_product(conn: psycopg.Connection, tenant_id: int, name: str) -> int:
    return conn.execute("INSERT INTO products (tenant_id, name) VALUES (%s, %s) RETURNING id",
                        (tenant_id, name)).fetchone()[0]


def license_product(conn: psycopg.Connection, client_id: int, product_id: int) -> None:
    conn.execute("INSERT INTO client_products (client_id, product_id) VALUES (%s, %s)",
                 (client_id, product_id))


@dataclass
class World:
    """Two tenants: `a` with a user of every kind, `b` with an admin and its own product."""

    tenant_a: int
    tenant_b: int
    product_a: int
    product_b: int
    admin: int
    developer: int
    support: int
    client_user: int
    admin_b: int


def token_for(client: TestClient | httpx.Client, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def auth(client: TestClient | httpx.Client, email: str,
         password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, email, password)}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app served by uvicorn on a real local port, in a thread; stop() and start() again
    on the same port (to cut the API off in the middle of an import)."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.settings), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=30)
            self.server = None
