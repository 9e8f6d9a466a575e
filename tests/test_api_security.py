"""Hardening of the REST API against hostile input: tokens, bodies, logins, sizes, authorship."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import bcrypt
import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import make_conninfo
from support.api import (
    PASSWORD,
    LiveServer,
    World,
    auth,
    free_port,
    make_product,
    make_tenant,
    make_user,
)
from support.http import raw_request

from api import throttle as throttle_module
from api.app import create_app
from api.auth import WEAK_KEY_REFUSED, issue_token
from api.config import ApiSettings, estimated_bits, published_keys, secret_key_problem
from api.db import DbConn
from api.throttle import LoginThrottle
from ops.core.catalog import OPS_METADATA_TABLE
from ops.core.config import Settings
from ops.core.guard import ENVIRONMENT_KEY

pytest_plugins = ["support.api_fixtures"]
pytestmark = pytest.mark.security


# --- tokens ---------------------------------------------------------------------------------

def test_non_ascii_bearer_token_is_401_not_500(live_server: LiveServer, world: World):
    token = "v1.e30.sïgnature".encode()
    with httpx.Client(base_url=live_server.url) as client:
        response = client.get("/api/epics", headers=[(b"authorization", b"Bearer " + token)])
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or expired token"}


# --- the signing key against a production database ------------------------------------------

EXAMPLE_KEY = sorted(published_keys())[0] if published_keys() else (
    "dev-secret-key-change-me-not-for-production-0123456789")


def mark_production(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {OPS_METADATA_TABLE} (key, value) VALUES (%s, 'production')"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (ENVIRONMENT_KEY,))


@pytest.mark.parametrize("key", [
    "", EXAMPLE_KEY, "a" * 32, "a" * 200, "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME",
    "replace_with_your_own_random_string_here", "0123456789" * 8, "aB3" * 25,
    "dev-secret-key-change-me-not-for-production-0123456789",
])
def test_published_or_low_entropy_keys_are_unfit_for_production(key: str):
    assert secret_key_problem(key) is not None


def test_random_keys_are_fit_for_production():
    for _ in range(500):
        for key in (secrets.token_urlsafe(32), secrets.token_hex(32)):
            assert secret_key_problem(key) is None, key
    assert estimated_bits("a" * 32) == 0


@pytest.mark.parametrize("app_env", [None, "test"])
def test_api_refuses_to_start_with_the_example_key_on_a_production_marked_database(
        cli_env: dict[str, str], db_url: str, tmp_path, app_env: str | None):
    mark_production(db_url)
    env = {k: v for k, v in cli_env.items() if k not in ("APP_ENV", "SECRET_KEY")}
    env["SECRET_KEY"] = EXAMPLE_KEY
    if app_env:
        env["APP_ENV"] = app_env
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert ("❌ SECRET_KEY looks like an example value; the API will not serve a production "
            "database") in result.stderr
    assert "environment marker" in result.stderr
    assert EXAMPLE_KEY not in result.stderr and "Traceback" not in result.stderr


def test_token_forged_with_the_example_key_never_gets_through(pg_server_url: str,
                                                               template_db: str,
                                                               settings: Settings):
    """The database is unreachable when the API starts; once it is up and marked production,
    every request (a forged admin token's, a login's) is a 503 and nothing is written."""
    name = f"t_late_{secrets.token_hex(4)}"
    url = make_conninfo(pg_server_url, dbname=name)
    app = create_app(ApiSettings(ops=settings.with_url(url), secret_key=EXAMPLE_KEY))
    server = psycopg.connect(pg_server_url, autocommit=True)
    try:
        server.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
        mark_production(url)
        with psycopg.connect(url, autocommit=True) as conn:
            tenant = make_tenant(conn, "SysTech")
            admin = make_user(conn, tenant, "admin@a.test", "admin")
            product = make_product(conn, tenant, "Tasklets")
        forged = issue_token(EXAMPLE_KEY, user_id=admin, tenant_id=tenant, ttl_seconds=600)
        headers = {"Authorization": f"Bearer {forged.token}"}
        with TestClient(app, raise_server_exceptions=False) as client:
            responses = [
                client.get("/api/products", headers=headers),
                client.get("/api/epics", headers=headers),
                client.get("/api/tags", headers=headers),
                client.post("/api/epics", headers=headers,
                            json={"productId": product, "title": "forged"}),
                client.post("/api/tags", headers=headers, json={"name": "forged"}),
                client.post(f"/api/products/{product}/work-items/sync", headers=headers,
                            json={"items": [{"kind": "epic", "externalId": "f", "title": "f"}]}),
                client.post("/api/auth/login",
                            json={"email": "admin@a.test", "password": PASSWORD}),
            ]
        assert {r.status_code for r in responses} == {503}
        assert {r.json()["detail"] for r in responses} == {WEAK_KEY_REFUSED}
        assert all(EXAMPLE_KEY not in r.text for r in responses)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT (SELECT count(*) FROM epics) + (SELECT count(*) FROM"
                                " tags)").fetchone()[0] == 0
    finally:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        server.close()


def test_strong_key_serves_a_production_marked_database(api_settings: ApiSettings,
                                                        db_url: str, world: World):
    mark_production(db_url)
    with TestClient(create_app(api_settings)) as client:
        response = client.get("/api/products", headers=auth(client, "admin@a.test"))
    assert response.status_code == 200


# --- body limits, and auth before the body ---------------------------------------------------

MB = 1024 * 1024
LOGIN_PATH = "/api/auth/login"


def _last_login(conn: psycopg.Connection, user_id: int) -> object:
    return conn.execute("SELECT last_login_at FROM users WHERE id = %s", (user_id,)).fetchone()[0]


def test_oversized_login_is_413_before_its_body_is_read(live_server: LiveServer, world: World,
                                                        conn: psycopg.Connection):
    # 50 MB promised, nothing sent: a server that waited for the body would time out.
    status, _, body = raw_request(live_server.port, "POST", LOGIN_PATH, headers={
        "Content-Type": "application/json", "Content-Length": str(50 * MB)})
    assert status == 413 and "8192 bytes" in body["detail"]
    # A real 50 MB body: a valid login padded with spaces, which would succeed if parsed.
    login = json.dumps({"email": "admin@a.test", "password": PASSWORD}).encode()
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        response = client.post(LOGIN_PATH, content=login[:-1] + b" " * (50 * MB) + b"}",
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert _last_login(conn, world.admin) is None  # the handler never ran


def test_chunked_body_past_the_limit_is_413(live_server: LiveServer, world: World,
                                            conn: psycopg.Connection):
    login = json.dumps({"email": "admin@a.test", "password": PASSWORD}).encode()
    padding = [b" " * 65536] * 16  # 1 MB in chunks, no Content-Length
    status, _, body = raw_request(live_server.port, "POST", LOGIN_PATH, chunked=True,
                                  headers={"Content-Type": "application/json"},
                                  body=[login[:-1], *padding, b"}"])
    assert status == 413 and "8192 bytes" in body["detail"]
    assert _last_login(conn, world.admin) is None


@pytest.mark.parametrize("authorization", [None, "Bearer forged.token.here", "Basic x"])
def test_anonymous_sync_is_401_before_its_body_is_read(live_server: LiveServer, world: World,
                                                       conn: psycopg.Connection,
                                                       authorization: str | None):
    headers = {"Content-Type": "application/json", "Content-Length": str(39 * MB)}
    if authorization:
        headers["Authorization"] = authorization
    path = f"/api/products/{world.product_a}/work-items/sync"
    status, found, body = raw_request(live_server.port, "POST", path, headers=headers)
    assert status == 401 and found["www-authenticate"] == "Bearer"
    assert body["detail"] in ("missing bearer token", "invalid or expired token")
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 0


def test_expired_token_is_refused_before_the_body(live_server: LiveServer, world: World):
    expired = issue_token(live_server.settings.secret_key, user_id=world.admin,
                          tenant_id=world.tenant_a, ttl_seconds=60, now=0)
    status, _, _ = raw_request(live_server.port, "POST", "/api/epics", headers={
        "Authorization": f"Bearer {expired.token}", "Content-Type": "application/json",
        "Content-Length": str(MB)})
    assert status == 401


def test_each_route_has_its_own_body_limit(live_server: LiveServer, world: World,
                                           conn: psycopg.Connection):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        headers = {**auth(client, "admin@a.test"), "Content-Type": "application/json"}
        # A sync of about 12 MB (more than the client's 8 MB chunks) is accepted...
        items = [{"kind": "epic", "externalId": f"bd-{i}", "title": "E",
                  "description": "d" * (MB - 200)} for i in range(12)]
        sync = f"/api/products/{world.product_a}/work-items/sync"
        accepted = client.post(sync, headers=headers, content=json.dumps({"items": items}))
        assert accepted.status_code == 200, accepted.text[:300]
        # ...17 MB is not, and neither is a 5 MB epic.
        status, _, body = raw_request(live_server.port, "POST", sync, headers={
            **headers, "Content-Length": str(17 * MB)})
        assert status == 413 and str(16 * MB) in body["detail"]
        status, _, body = raw_request(live_server.port, "POST", "/api/epics", headers={
            **headers, "Content-Length": str(5 * MB)})
        assert status == 413 and str(4 * MB) in body["detail"]
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 12


# --- logins: one bcrypt check, throttled ---------------------------------------------------

@pytest.fixture
def bcrypt_checks(monkeypatch) -> list[int]:
    """Counts real bcrypt checks (each call still goes to bcrypt)."""
    calls: list[int] = []
    real = bcrypt.checkpw

    def counted(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counted)
    return calls


def _login(client: TestClient, email: str, password: str, **extra) -> httpx.Response:
    return client.post(LOGIN_PATH, json={"email": email, "password": password, **extra})


def test_every_login_costs_exactly_one_bcrypt_check(api_client: TestClient, world: World,
                                                    conn: psycopg.Connection,
                                                    bcrypt_checks: list[int]):
    make_user(conn, world.tenant_b, "twice@x.test", password="b-password")
    make_user(conn, world.tenant_a, "twice@x.test", password="a-password")
    conn.execute("UPDATE users SET password_hash = 'not-a-bcrypt-hash' WHERE id = %s",
                 (world.support,))
    attempts = [
        ("nobody@x.test", "whatever", {}, 401),  # in no tenant
        ("admin@a.test", "wrong", {}, 401),  # in one tenant
        ("admin@a.test", PASSWORD, {}, 200),
        ("twice@x.test", "a-password", {}, 401),  # in two: the oldest (tenant b) is tried
        ("twice@x.test", "b-password", {}, 200),
        ("twice@x.test", "a-password", {"tenant": world.tenant_a}, 200),
        ("twice@x.test", "b-password", {"tenant": world.tenant_a}, 401),
        ("support@a.test", PASSWORD, {}, 401),  # malformed stored hash
    ]
    for email, password, extra, status in attempts:
        bcrypt_checks.clear()
        response = _login(api_client, email, password, **extra)
        assert response.status_code == status, (email, extra, response.text)
        assert len(bcrypt_checks) == 1, (email, extra)


def test_failed_logins_back_off_per_login_and_success_resets(api_client: TestClient,
                                                             world: World,
                                                             bcrypt_checks: list[int]):
    free = LoginThrottle.LOGIN_FREE_FAILURES
    assert [_login(api_client, "dev@a.test", "wrong").status_code
            for _ in range(free + 1)] == [401] * (free + 1)
    bcrypt_checks.clear()
    blocked = [_login(api_client, "DEV@a.test", "wrong"), _login(api_client, "dev@a.test",
                                                                  PASSWORD)]
    assert [r.status_code for r in blocked] == [429, 429]
    assert blocked[0].headers["retry-after"] == "1"
    assert blocked[0].json() == {"detail": "too many failed logins: try again in 1 s"}
    assert bcrypt_checks == []  # a blocked login costs no bcrypt check
    # Other accounts are not held up by this one.
    assert _login(api_client, "admin@a.test", PASSWORD).status_code == 200
    time.sleep(1.1)
    assert _login(api_client, "dev@a.test", PASSWORD).status_code == 200
    # The success cleared the count: the free failures are free again.
    assert [_login(api_client, "dev@a.test", "wrong").status_code
            for _ in range(free)] == [401] * free


def test_failed_logins_back_off_per_client_ip(api_client: TestClient, world: World):
    free = LoginThrottle.IP_FREE_FAILURES
    statuses = [_login(api_client, f"guess{i}@a.test", "wrong").status_code
                for i in range(free + 1)]
    assert statuses == [401] * (free + 1)
    fresh = _login(api_client, "admin@a.test", PASSWORD)
    assert fresh.status_code == 429 and int(fresh.headers["retry-after"]) >= 1


def test_backoff_doubles_to_a_cap_and_an_ip_is_not_reset_by_a_success():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(LoginThrottle.LOGIN_FREE_FAILURES):
        throttle.failed("a@x.test", "10.0.0.2")
    assert throttle.retry_after("a@x.test", "10.0.0.2") == 0
    waits = []
    for _ in range(12):
        throttle.failed("a@x.test", "10.0.0.2")
        waits.append(throttle.retry_after("a@x.test", "10.0.0.2"))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    for i in range(LoginThrottle.IP_FREE_FAILURES + 1):
        throttle.failed(f"u{i}@x.test", "10.0.0.9")
    throttle.succeeded("u0@x.test", "10.0.0.9")
    assert throttle.retry_after("u0@x.test", "10.0.0.9") == 1  # the IP is still held
    assert throttle.retry_after("u0@x.test", "10.0.0.8") == 0  # the account is clear
    now[0] += 2 + throttle_module.FORGET_SECONDS
    throttle.failed("a@x.test", "10.0.0.2")  # an hour later: counting starts afresh
    assert throttle.retry_after("a@x.test", "10.0.0.2") == 0


def test_guesses_from_elsewhere_never_lock_the_real_user_out_for_long():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    # One guesser, past its free failures up to the cap (not yet spraying from its address):
    # it blocks only itself.
    for _ in range(LoginThrottle.LOGIN_FREE_FAILURES + 11):
        throttle.failed("ann@x.test", "203.0.113.7", tenant=1)
    assert throttle.retry_after("ann@x.test", "203.0.113.7", tenant=1) == 900
    assert throttle.retry_after("ann@x.test", "198.51.100.1", tenant=1) == 0  # Ann's own
    assert throttle.retry_after("ann@x.test", "203.0.113.7", tenant=2) == 0  # other tenant
    assert throttle.retry_after("ann@x.test", "203.0.113.7") == 0  # no tenant named
    # Guesses spread over many addresses slow the account down, by at most a minute.
    for i in range(200):
        throttle.failed("ann@x.test", f"10.1.{i // 256}.{i % 256}", tenant=1)
    held = throttle.retry_after("ann@x.test", "198.51.100.1", tenant=1)
    assert 0 < held <= throttle_module.MAX_ACCOUNT_BLOCK_SECONDS
    now[0] += held
    assert throttle.retry_after("ann@x.test", "198.51.100.1", tenant=1) == 0
    throttle.succeeded("ann@x.test", "198.51.100.1", tenant=1)
    throttle.failed("ann@x.test", "10.9.9.9", tenant=1)  # the account's count starts afresh
    assert throttle.retry_after("ann@x.test", "198.51.100.1", tenant=1) == 0


def test_throttle_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(throttle_module, "MAX_TRACKED", 50)
    throttle = LoginThrottle()
    for i in range(1000):
        throttle.failed(f"made-up-{i}@x.test", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._logins.entries) == len(throttle._accounts.entries) == \
        len(throttle._ips.entries) == 50


# --- nesting and size limits on every write path ---------------------------------------------

def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def _sync_items(client: TestClient, headers: dict, product_id: int, items: list[dict],
                **body) -> httpx.Response:
    return client.post(f"/api/products/{product_id}/work-items/sync", headers=headers,
                       json={"items": items, **body})


@pytest.mark.parametrize("depth", [300, 500])
def test_deeply_nested_metadata_is_422_on_every_write_path(api_client: TestClient,
                                                           world: World, depth: int):
    headers = auth(api_client, "admin@a.test")
    deep = _nested(depth)
    epic = api_client.post("/api/epics", headers=headers,
                           json={"productId": world.product_a, "title": "ok"}).json()
    responses = {
        "create": api_client.post("/api/tasks", headers=headers, json={
            "productId": world.product_a, "title": "t", "metadata": deep}),
        "update": api_client.patch(f"/api/epics/{epic['id']}", headers=headers,
                                   json={"metadata": deep}),
        "sync": _sync_items(api_client, headers, world.product_a, [
            {"kind": "epic", "externalId": "bd-1", "title": "E", "metadata": deep}]),
    }
    for path, response in responses.items():
        assert response.status_code == 422, (path, response.status_code)
        assert "nested more than 32 levels deep" in response.text, path
    for kind in ("epics", "tasks"):  # nothing unserialisable was stored
        assert api_client.get(f"/api/{kind}", headers=headers).status_code == 200


@pytest.mark.parametrize("field", ["externalId", "externalSource", "label", "dependencyType"])
def test_oversized_indexed_values_in_a_sync_are_422_not_503(api_client: TestClient,
                                                            world: World, field: str):
    item = {"kind": "task", "externalId": "bd-1", "title": "T",
            "dependencies": [{"dependsOn": "bd-2", "type": "blocks"}]}
    big = "x" * 20_000
    if field == "label":
        item["labels"] = ["fine", big]
    elif field == "dependencyType":
        item["dependencies"][0]["type"] = big
    else:
        item[field] = big
    response = _sync_items(api_client, auth(api_client, "admin@a.test"), world.product_a,
                           [item], phase="all")
    assert response.status_code == 422, response.text[:300]
    assert "20000 bytes long; the limit is 1000" in response.text
    assert big not in response.text


def test_indexed_values_are_limited_in_bytes_not_characters(api_client: TestClient,
                                                            world: World):
    headers = auth(api_client, "admin@a.test")
    wide = "\U0001d538" * 500  # 500 characters, 2,000 UTF-8 bytes
    epic = api_client.post("/api/epics", headers=headers, json={
        "productId": world.product_a, "title": "t", "externalSource": wide, "externalId": wide})
    tag = api_client.post("/api/tags", headers=headers, json={"name": wide})
    assert (epic.status_code, tag.status_code) == (422, 422)
    assert {e["field"] for e in epic.json()["errors"]} == {"externalSource", "externalId"}


def test_lone_surrogates_and_oversized_text_are_422(api_client: TestClient, world: World):
    headers = {**auth(api_client, "admin@a.test"), "Content-Type": "application/json"}
    title = api_client.post("/api/epics", headers=headers, content=(
        f'{{"productId": {world.product_a}, "title": "a\\ud800b"}}'))
    metadata = api_client.post(
        f"/api/products/{world.product_a}/work-items/sync", headers=headers,
        content='{"items": [{"kind": "epic", "externalId": "e", "title": "t", '
                '"metadata": {"k": ["\\udfff"]}}]}')
    huge = api_client.post("/api/epics", headers=headers, json={
        "productId": world.product_a, "title": "t", "description": "d" * (MB + 1)})
    assert [r.status_code for r in (title, metadata, huge)] == [422, 422, 422]
    assert title.json()["errors"][0]["field"] == "title"
    assert "lone surrogate" in metadata.text and "limit is 1048576" in huge.text


def test_too_many_labels_or_comments_is_422(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    response = _sync_items(api_client, headers, world.product_a, [
        {"kind": "epic", "externalId": "e", "title": "t",
         "labels": [f"l{i}" for i in range(1001)],
         "comments": [{"text": "c"}] * 1001}])
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"items.0.labels",
                                                              "items.0.comments"}


def test_a_validation_error_list_stays_short(api_client: TestClient, world: World):
    items = [{"kind": "story", "externalId": f"bd-{i}", "title": "t"} for i in range(5000)]
    response = _sync_items(api_client, auth(api_client, "admin@a.test"), world.product_a, items)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == ("invalid request: items.0.kind, items.1.kind, items.2.kind, "
                              "items.3.kind, items.4.kind (and 4995 more)")
    assert len(body["errors"]) == 100 and len(response.content) < 20_000


def test_a_database_program_limit_is_422_not_503(api_settings: ApiSettings, world: World):
    """SQLSTATE class 54 (program_limit_exceeded) is the request's fault: the importer
    retries 5xx, so it must not look like an outage."""
    app = create_app(api_settings)

    @app.get("/api/too-big")
    def too_big(conn: DbConn) -> None:
        conn.execute("SELECT array_fill(0, ARRAY[200000000])")  # over the array size limit

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/too-big", headers=auth(client, "admin@a.test"))
    assert response.status_code == 422
    assert response.json() == {"detail": "a value is too large for the database"}


# --- sync authorship ---------------------------------------------------------------------------

PAST = "2001-02-03T04:05:06+00:00"


def _authored(external_id: str, author: str) -> dict:
    return {"kind": "epic", "externalId": external_id, "title": "E", "createdBy": author,
            "createdAt": PAST, "comments": [{"text": "hi", "author": author,
                                             "createdAt": PAST}]}


def _authorship(conn: psycopg.Connection, external_id: str) -> tuple:
    return conn.execute(
        "SELECT e.created_by, e.created_at, c.author_id, c.author_name, c.created_at"
        " FROM epics e JOIN comments c ON c.epic_id = e.id WHERE e.external_id = %s",
        (external_id,)).fetchone()


def test_a_developers_sync_records_the_developer_as_author(api_client: TestClient,
                                                          world: World,
                                                          conn: psycopg.Connection):
    headers = auth(api_client, "dev@a.test")
    first = _sync_items(api_client, headers, world.product_a, [_authored("bd-1", "admin@a.test")])
    assert first.status_code == 200, first.text
    created_by, created_at, author_id, author_name, commented_at = _authorship(conn, "bd-1")
    assert (created_by, author_id, author_name) == (world.developer, world.developer,
                                                    "dev@a.test")
    assert created_at.year > 2001 and commented_at.year > 2001
    # Re-syncing the same payload changes nothing.
    again = _sync_items(api_client, headers, world.product_a, [_authored("bd-1", "admin@a.test")])
    assert again.json()["counts"]["epic"]["unchanged"] == 1
    assert again.json()["commentsAdded"] == 0
    assert _authorship(conn, "bd-1") == (created_by, created_at, author_id, author_name,
                                         commented_at)


def test_an_admin_importer_may_record_other_authors_and_times(api_client: TestClient,
                                                             world: World,
                                                             conn: psycopg.Connection):
    headers = auth(api_client, "admin@a.test")
    response = _sync_items(api_client, headers, world.product_a, [_authored("bd-1",
                                                                            "dev@a.test")])
    assert response.status_code == 200, response.text
    created_by, created_at, author_id, author_name, commented_at = _authorship(conn, "bd-1")
    assert (created_by, author_id, author_name) == (world.developer, world.developer,
                                                    "dev@a.test")
    assert created_at.isoformat() == commented_at.isoformat() == PAST
