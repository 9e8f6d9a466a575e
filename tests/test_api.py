"""The REST API against the real database: auth, tenant isolation, roles, errors, filters."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from support.api import PASSWORD, SECRET, World, auth, free_port, make_user, token_for

from api.app import create_app
from api.auth import issue_token, verify_token
from api.config import ApiSettings, load_api_settings, secret_key_problem
from ops.core.config import PROJECT_ROOT
from ops.core.errors import NotFound, OpsError, Refused, UsageError

pytest_plugins = ["support.api_fixtures"]


def _epic(client: TestClient, headers: dict, product_id: int, title: str = "Epic", **extra):
    response = client.post("/api/epics", headers=headers,
                           json={"productId": product_id, "title": title, **extra})
    assert response.status_code == 201, response.text
    return response.json()


# --- login and tokens -----------------------------------------------------------------------

def test_login_returns_token_and_user_in_camel_case(api_client: TestClient, world: World):
    response = api_client.post("/api/auth/login",
                               json={"email": "Admin@A.test", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": world.admin, "email": "admin@a.test", "role": "admin",
                            "tenantId": world.tenant_a}
    assert body["token"] and body["expiresAt"]
    me = api_client.get("/api/products", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200


def test_login_failure_does_not_reveal_whether_the_email_exists(api_client: TestClient,
                                                                world: World):
    wrong_password = api_client.post("/api/auth/login",
                                     json={"email": "admin@a.test", "password": "nope"})
    unknown_email = api_client.post("/api/auth/login",
                                    json={"email": "ghost@a.test", "password": "nope"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json() == {
        "detail": "invalid email or password"}


def test_login_refuses_inactive_users(api_client: TestClient, world: World, conn):
    make_user(conn, world.tenant_a, "gone@a.test", "developer", active=False)
    response = api_client.post("/api/auth/login",
                               json={"email": "gone@a.test", "password": PASSWORD})
    assert response.status_code == 401


def test_login_with_overlong_password_is_a_plain_401(api_client: TestClient, world: World):
    response = api_client.post("/api/auth/login",
                               json={"email": "admin@a.test", "password": "x" * 500})
    assert response.status_code == 401


@pytest.mark.parametrize("header", [
    None, "Bearer garbage", "Bearer v1.e30.c2ln", "Basic YWRtaW46cHc=",
])
def test_missing_or_bad_token_is_401(api_client: TestClient, world: World, header):
    headers = {"Authorization": header} if header else {}
    response = api_client.get("/api/epics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_expired_token_is_401(api_client: TestClient, world: World):
    expired = issue_token(SECRET, user_id=world.admin, tenant_id=world.tenant_a,
                          ttl_seconds=60, now=0)
    response = api_client.get("/api/epics", headers={"Authorization": f"Bearer {expired.token}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or expired token"}


def test_token_signed_with_another_key_or_tampered_is_rejected():
    issued = issue_token(SECRET, user_id=1, tenant_id=1, ttl_seconds=60)
    assert verify_token(SECRET, issued.token) is not None
    assert verify_token("another-key-another-key-another-key!", issued.token) is None
    prefix, payload, signature = issued.token.split(".")
    forged = issue_token(SECRET, user_id=2, tenant_id=1, ttl_seconds=60).token.split(".")[1]
    assert verify_token(SECRET, f"{prefix}.{forged}.{signature}") is None


def test_token_of_deactivated_user_stops_working(api_client: TestClient, world: World, conn):
    headers = auth(api_client, "dev@a.test")
    conn.execute("UPDATE users SET is_active = false WHERE id = %s", (world.developer,))
    assert api_client.get("/api/epics", headers=headers).status_code == 401


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["", "change-me", "short", "example-secret-key-" * 3])
def test_missing_or_example_secret_key_is_unfit_for_production(key: str):
    assert secret_key_problem(key) is not None


def test_a_real_secret_key_is_fit_for_production():
    assert secret_key_problem(SECRET) is None


def test_production_app_does_not_start_without_secret_key(monkeypatch, db_url):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(OpsError, match="SECRET_KEY"):
        load_api_settings(env_file=None)


# --- health -------------------------------------------------------------------------------

def test_health_reports_database_and_schema_revision(api_client: TestClient):
    response = api_client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert body["schemaRevision"] and body["schemaRevision"] == body["headRevision"]


def test_health_is_503_when_database_is_unreachable(api_settings: ApiSettings):
    down = ApiSettings(ops=api_settings.ops.with_url("postgresql://nobody@127.0.0.1:1/none"),
                       secret_key=SECRET)
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        health = client.get("/api/health")
        login = client.post("/api/auth/login", json={"email": "a@b.c", "password": "x"})
    assert health.status_code == 503 and health.json()["database"] == "unreachable"
    assert login.status_code == 503 and login.json() == {"detail": "database unavailable"}


# --- tenant isolation ---------------------------------------------------------------------

def test_other_tenants_rows_are_404_and_never_listed(api_client: TestClient, world: World):
    mine = auth(api_client, "admin@a.test")
    theirs = auth(api_client, "admin@b.test")
    secret = _epic(api_client, theirs, world.product_b, "Secret plan",
                   externalSource="beads", externalId="bd-1")

    assert api_client.get(f"/api/epics/{secret['id']}", headers=mine).status_code == 404
    assert api_client.get(f"/api/products/{world.product_b}", headers=mine).status_code == 404
    patched = api_client.patch(f"/api/epics/{secret['id']}", headers=mine, json={"title": "x"})
    assert patched.status_code == 404
    listed = api_client.get("/api/epics", headers=mine,
                            params={"externalSource": "beads", "externalId": "bd-1"})
    assert listed.json() == []
    assert [p["name"] for p in api_client.get("/api/products", headers=mine).json()] == [
        "Tasklets"]
    # Referencing another tenant's product or epic is refused too, naming the field.
    cross = api_client.post("/api/epics", headers=mine,
                            json={"productId": world.product_b, "title": "x"})
    assert cross.status_code == 422 and cross.json()["errors"][0]["field"] == "productId"
    feature = api_client.post("/api/features", headers=mine,
                              json={"productId": world.product_a, "title": "f",
                                    "epicId": secret["id"]})
    assert feature.status_code == 422 and feature.json()["errors"][0]["field"] == "epicId"
    assert api_client.get(f"/api/epics/{secret['id']}", headers=theirs).json()["title"] == (
        "Secret plan")


def test_tags_are_per_tenant(api_client: TestClient, world: World):
    mine = auth(api_client, "admin@a.test")
    theirs = auth(api_client, "admin@b.test")
    assert api_client.post("/api/tags", headers=theirs, json={"name": "x"}).status_code == 201
    assert api_client.get("/api/tags", headers=mine).json() == []
    # The same name is free in another tenant.
    assert api_client.post("/api/tags", headers=mine, json={"name": "x"}).status_code == 201


# --- roles ----------------------------------------------------------------------------------

@pytest.mark.parametrize("email", ["support@a.test", "user@acme.test"])
def test_only_admin_and_developer_users_write(api_client: TestClient, world: World, email):
    headers = auth(api_client, email)
    epic = _epic(api_client, auth(api_client, "dev@a.test"), world.product_a)
    writes = [
        api_client.post("/api/epics", headers=headers,
                        json={"productId": world.product_a, "title": "x"}),
        api_client.patch(f"/api/epics/{epic['id']}", headers=headers, json={"title": "y"}),
        api_client.post("/api/tags", headers=headers, json={"name": "t"}),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403]
    # Reading is allowed, and nothing was changed.
    assert api_client.get(f"/api/epics/{epic['id']}", headers=headers).json()["title"] == "Epic"


# --- create, update, validation -------------------------------------------------------------

def test_create_and_patch_task_under_feature_and_epic(api_client: TestClient, world: World):
    headers = auth(api_client, "dev@a.test")
    epic = _epic(api_client, headers, world.product_a)
    feature = api_client.post("/api/features", headers=headers, json={
        "productId": world.product_a, "epicId": epic["id"], "title": "Feature"}).json()
    task = api_client.post("/api/tasks", headers=headers, json={
        "productId": world.product_a, "epicId": epic["id"], "featureId": feature["id"],
        "title": "Task", "taskType": "bug", "estimateMinutes": 150, "labels": ["a", "b"],
        "metadata": {"k": [1, 2]}, "dueDate": "2026-01-31", "assigneeId": world.developer})
    assert task.status_code == 201, task.text
    body = task.json()
    assert body["createdBy"] == world.developer and body["estimateMinutes"] == 150
    assert body["status"] == "backlog" and body["priority"] == "medium"

    patched = api_client.patch(f"/api/tasks/{body['id']}", headers=headers,
                               json={"status": "done", "featureId": None, "labels": []})
    assert patched.status_code == 200
    after = patched.json()
    assert (after["status"], after["featureId"], after["labels"]) == ("done", None, [])
    assert after["title"] == "Task" and after["updatedAt"] >= body["updatedAt"]


def test_invalid_payload_is_422_naming_the_fields(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    response = api_client.post("/api/tasks", headers=headers, json={
        "productId": "one", "title": "", "status": "finished", "surprise": 1})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"productId", "title", "status", "surprise"}
    assert "finished" not in response.text  # inputs are not echoed back


def test_patch_cannot_null_a_required_field(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    epic = _epic(api_client, headers, world.product_a)
    response = api_client.patch(f"/api/epics/{epic['id']}", headers=headers,
                                json={"title": None})
    assert response.status_code == 422 and "title may not be null" in response.text


def test_task_cannot_be_its_own_parent(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    task = api_client.post("/api/tasks", headers=headers,
                           json={"productId": world.product_a, "title": "t"}).json()
    response = api_client.patch(f"/api/tasks/{task['id']}", headers=headers,
                                json={"parentTaskId": task["id"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "parentTaskId"


def test_duplicate_external_id_in_product_is_409(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    _epic(api_client, headers, world.product_a, externalSource="beads", externalId="bd-1")
    again = api_client.post("/api/epics", headers=headers, json={
        "productId": world.product_a, "title": "again", "externalSource": "beads",
        "externalId": "bd-1"})
    assert again.status_code == 409
    assert api_client.post("/api/tags", headers=headers, json={"name": "t"}).status_code == 201
    assert api_client.post("/api/tags", headers=headers, json={"name": "t"}).status_code == 409


def test_nul_characters_are_422_not_500(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    text = api_client.post("/api/epics", headers=headers,
                           json={"productId": world.product_a, "title": "a\u0000b"})
    meta = api_client.post("/api/epics", headers=headers,
                           json={"productId": world.product_a, "title": "ok",
                                 "metadata": {"k": "a\u0000b"}})
    query = api_client.get("/api/epics", headers=headers, params={"externalId": "a\x00"})
    assert (text.status_code, meta.status_code, query.status_code) == (422, 422, 422)


def test_unexpected_errors_are_generic_500_without_details(api_settings: ApiSettings,
                                                           world: World):
    app = create_app(api_settings)

    @app.get("/api/boom")
    def boom():
        raise psycopg.ProgrammingError('syntax error at or near "SELEC" in SELEC * FROM users')

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/boom", headers=auth(client, "admin@a.test"))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}


@pytest.mark.parametrize(("error", "status"), [
    (NotFound("no such tenant"), 404), (Refused("production database"), 409),
    (UsageError("bad value"), 422), (OpsError("parent cycle"), 422)])
def test_each_ops_error_type_has_its_status(api_settings: ApiSettings, world: World, error,
                                            status: int):
    app = create_app(api_settings)

    @app.get("/api/raises")
    def raises():
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/raises", headers=auth(client, "admin@a.test"))
    assert response.status_code == status
    assert response.json()["detail"] == error.message


# --- filters ----------------------------------------------------------------------------------

def test_list_filters_by_external_id_status_product_and_parent(api_client: TestClient,
                                                               world: World, conn):
    headers = auth(api_client, "admin@a.test")
    other_product = conn.execute(
        "INSERT INTO products (tenant_id, name) VALUES (%s, 'Other') RETURNING id",
        (world.tenant_a,)).fetchone()[0]
    e1 = _epic(api_client, headers, world.product_a, "E1", externalSource="beads",
               externalId="bd-1", status="done")
    _epic(api_client, headers, world.product_a, "E2", externalSource="beads", externalId="bd-2")
    _epic(api_client, headers, other_product, "E3", externalSource="beads", externalId="bd-1")
    f1 = api_client.post("/api/features", headers=headers, json={
        "productId": world.product_a, "title": "F1", "epicId": e1["id"]}).json()
    api_client.post("/api/features", headers=headers,
                    json={"productId": world.product_a, "title": "F2"})

    def titles(path: str, **params) -> list[str]:
        response = api_client.get(path, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [row.get("title", row.get("name")) for row in response.json()]

    assert titles("/api/epics") == ["E1", "E2", "E3"]
    assert titles("/api/epics", externalSource="beads", externalId="bd-1") == ["E1", "E3"]
    assert titles("/api/epics", externalId="bd-1", productId=world.product_a) == ["E1"]
    assert titles("/api/epics", status="done") == ["E1"]
    assert titles("/api/epics", limit=1, offset=1) == ["E2"]
    assert titles("/api/features", epicId=e1["id"]) == ["F1"]
    assert titles("/api/products", name="tasklets") == ["Tasklets"]
    assert titles("/api/products", name="nope") == []
    assert api_client.get("/api/tags", headers=headers, params={"name": "x"}).json() == []
    assert f1["epicId"] == e1["id"]
    bad = api_client.get("/api/epics", headers=headers, params={"status": "nope", "limit": 0})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"status", "limit"}


def test_soft_deleted_items_are_hidden_unless_asked(api_client: TestClient, world: World, conn):
    headers = auth(api_client, "admin@a.test")
    epic = _epic(api_client, headers, world.product_a)
    conn.execute("UPDATE epics SET deleted_at = now() WHERE id = %s", (epic["id"],))
    assert api_client.get("/api/epics", headers=headers).json() == []
    listed = api_client.get("/api/epics", headers=headers, params={"includeDeleted": True})
    assert [e["id"] for e in listed.json()] == [epic["id"]]


def test_patch_of_an_item_deleted_while_it_waits_is_404_not_500(api_client: TestClient,
                                                               world: World, db_url: str):
    """The row is read, then deleted by another session before the UPDATE: no row comes back
    (was: None served as the item, a 500)."""
    headers = auth(api_client, "admin@a.test")
    epic = _epic(api_client, headers, world.product_a)
    with psycopg.connect(db_url) as other, ThreadPoolExecutor(1) as pool:
        other.execute("DELETE FROM epics WHERE id = %s", (epic["id"],))  # holds the row lock
        patching = pool.submit(api_client.patch, f"/api/epics/{epic['id']}", headers=headers,
                               json={"title": "renamed"})
        for _ in range(200):  # until the PATCH's UPDATE waits on the row lock (<= 10 s)
            if other.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                             "AND query LIKE 'UPDATE%%epics%%'").fetchone() or patching.done():
                break
            time.sleep(0.05)
        other.commit()
        response = patching.result(timeout=30)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "epic not found"


def test_same_email_in_two_tenants_logs_into_the_oldest_account_unless_a_tenant_is_named(
        api_client: TestClient, world: World, conn):
    make_user(conn, world.tenant_b, "admin@a.test", "admin", password="other-password")
    login = {"email": "admin@a.test", "password": "other-password"}
    assert api_client.post("/api/auth/login", json=login).status_code == 401
    named = api_client.post("/api/auth/login", json={**login, "tenant": world.tenant_b})
    assert named.status_code == 200 and named.json()["user"]["tenantId"] == world.tenant_b
    assert token_for(api_client, "admin@a.test")  # the oldest (tenant a) account


def test_openapi_docs_are_served(api_client: TestClient):
    assert api_client.get("/docs").status_code == 200
    paths = api_client.get("/openapi.json").json()["paths"]
    assert {"/api/auth/login", "/api/health", "/api/epics/{item_id}", "/api/tags"} <= set(paths)


def test_serve_command_answers_on_a_real_port(cli_env: dict[str, str]):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ops", "serve", "--port", str(port)],
                            env=cli_env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        for _ in range(300):
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).json()
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert body["database"] == "reachable"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"Serving the Tasklets API on http://127.0.0.1:{port}" in proc.stdout.read()


@pytest.mark.parametrize(("key", "message"), [
    (None, "SECRET_KEY is not set"),
    ("dev-secret-key-change-me-not-for-production-0123456789", "looks like an example value"),
])
def test_serve_refuses_to_start_in_production_without_a_real_secret_key(
        cli_env: dict[str, str], tmp_path, key, message):
    env = {k: v for k, v in cli_env.items() if k != "SECRET_KEY"}
    env["APP_ENV"] = "production"
    if key:
        env["SECRET_KEY"] = key
    (tmp_path / "empty.env").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "ops", "--env-file", str(tmp_path / "empty.env"), "serve",
         "--port", str(free_port())], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


# --- bulk sync endpoint ---------------------------------------------------------------------

def _sync(client: TestClient, headers: dict, product_id: int, items: list[dict], **body):
    return client.post(f"/api/products/{product_id}/work-items/sync", headers=headers,
                       json={"items": items, **body})


def test_sync_creates_items_in_own_tenant_and_is_idempotent(api_client: TestClient,
                                                            world: World):
    headers = auth(api_client, "dev@a.test")
    items = [{"kind": "epic", "externalId": "bd-1", "title": "E", "labels": ["x"]},
             {"kind": "task", "externalId": "bd-2", "title": "T", "parentExternalId": "bd-1"}]
    first = _sync(api_client, headers, world.product_a, items)
    assert first.status_code == 200, first.text
    assert first.json()["counts"]["epic"]["created"] == 1
    again = _sync(api_client, headers, world.product_a, items).json()
    assert again["counts"]["task"] == {"created": 0, "updated": 0, "unchanged": 1,
                                       "skipped": 0, "removed": 0}
    task = api_client.get("/api/tasks", headers=headers, params={"externalId": "bd-2"}).json()
    epic = api_client.get("/api/epics", headers=headers, params={"externalId": "bd-1"}).json()
    assert task[0]["epicId"] == epic[0]["id"] and epic[0]["labels"] == ["x"]


def test_sync_into_another_tenants_product_is_404(api_client: TestClient, world: World, conn):
    headers = auth(api_client, "admin@a.test")
    response = _sync(api_client, headers, world.product_b,
                     [{"kind": "epic", "externalId": "bd-1", "title": "E"}])
    assert response.status_code == 404
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 0


def test_sync_is_403_for_users_who_may_not_write(api_client: TestClient, world: World):
    headers = auth(api_client, "support@a.test")
    response = _sync(api_client, headers, world.product_a,
                     [{"kind": "epic", "externalId": "bd-1", "title": "E"}])
    assert response.status_code == 403


def test_sync_payload_errors_name_the_item_fields(api_client: TestClient, world: World):
    headers = auth(api_client, "admin@a.test")
    response = _sync(api_client, headers, world.product_a, [
        {"kind": "epic", "externalId": "bd-1", "title": "ok"},
        {"kind": "story", "externalId": "bd-2", "title": "x", "status": "open"}])
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"items.1.kind", "items.1.status"}


def test_sync_refusal_from_the_writer_is_422_and_writes_nothing(api_client: TestClient,
                                                                world: World, conn):
    headers = auth(api_client, "admin@a.test")
    response = _sync(api_client, headers, world.product_a, [
        {"kind": "epic", "externalId": "bd-0", "title": "fine"},
        {"kind": "task", "externalId": "bd-1", "title": "a", "parentExternalId": "bd-2"},
        {"kind": "task", "externalId": "bd-2", "title": "b", "parentExternalId": "bd-1"}])
    assert response.status_code == 422
    assert "cycle" in response.json()["detail"]
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 0


def test_sync_dry_run_counts_and_rolls_back(api_client: TestClient, world: World, conn):
    headers = auth(api_client, "admin@a.test")
    response = _sync(api_client, headers, world.product_a,
                     [{"kind": "epic", "externalId": "bd-1", "title": "E"}],
                     phase="all", dryRun=True)
    assert response.json()["counts"]["epic"]["created"] == 1
    assert conn.execute("SELECT count(*) FROM epics").fetchone()[0] == 0


def test_uvicorn_module_app_refuses_to_start_in_production_without_secret_key(
        cli_env: dict[str, str], tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(free_port())],
        env={**env, "APP_ENV": "production"}, cwd=tmp_path, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert "❌ SECRET_KEY is not set" in result.stderr and "Traceback" not in result.stderr
