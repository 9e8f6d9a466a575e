"""`import beads --via api`: parity with the direct import, idempotency, failures.

Every import here goes through uvicorn on a real local port (the `live_server` fixture).
Parity runs both writers into two products of the same tenant and compares everything the
import writes, with ids and timestamps replaced by external ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.api import PASSWORD, LiveServer, World, free_port, make_product, make_user
from support.beads import FIXTURES

from ops.beads.importer import ImportOptions, import_beads, prepare
from ops.beads.via_api import ApiClient, write_via_api
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.output import Reporter

pytest_plugins = ["support.api_fixtures"]

RAMESH = "ramesh@systech.com"
PARITY_FILES = ["early.jsonl", "modern.jsonl"]


@pytest.fixture
def systech(world: World, conn: psycopg.Connection, monkeypatch) -> dict[str, int]:
    """The world plus Ramesh (the importer's default login) and two empty products."""
    monkeypatch.setenv("TASKLETS_API_PASSWORD", PASSWORD)
    return {
        "ramesh": make_user(conn, world.tenant_a, RAMESH, "admin"),
        "direct": make_product(conn, world.tenant_a, "Direct"),
        "api": make_product(conn, world.tenant_a, "ViaApi"),
    }


def _options(file: Path | str, product: str, url: str = "", **extra: Any) -> ImportOptions:
    path = file if isinstance(file, Path) else FIXTURES / file
    return ImportOptions(file=path, product=product, via="api" if url else "db", api_url=url,
                         **extra)


def product_state(conn: psycopg.Connection, product_id: int) -> dict[str, Any]:
    """What the import wrote for one product, ids and timestamps replaced by external ids."""
    ext = {}
    items: dict[str, list] = {}
    skip = {"id", "public_id", "product_id", "created_at", "updated_at", "deleted_at",
            "epic_id", "feature_id", "parent_task_id"}
    for kind in ("epic", "feature", "task"):
        cur = conn.execute(f"SELECT * FROM {kind}s WHERE product_id = %s ORDER BY external_id",
                           (product_id,))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            ext[kind, row["id"]] = row["external_id"]
        items[kind] = rows
    state: dict[str, Any] = {}
    for kind, rows in items.items():
        state[kind] = [
            {**{k: v for k, v in row.items() if k not in skip},
             "deleted": row["deleted_at"] is not None,
             **{ref: ext.get((ref.removesuffix("_id").replace("parent_task", "task"), row[ref]))
                for ref in ("epic_id", "feature_id", "parent_task_id") if ref in row}}
            for row in rows]
    state["tags"] = sorted(
        (kind, ext[kind, item_id], name)
        for kind in ("epic", "feature", "task")
        for item_id, name in conn.execute(
            f"SELECT it.{kind}_id, g.name FROM item_tags it JOIN tags g ON g.id = it.tag_id "
            f"JOIN {kind}s x ON x.id = it.{kind}_id WHERE x.product_id = %s", (product_id,)))
    state["comments"] = sorted(
        (kind, ext[kind, item_id], author_id, author, body, str(metadata))
        for kind in ("epic", "feature", "task")
        for item_id, author_id, author, body, metadata in conn.execute(
            f"SELECT c.{kind}_id, c.author_id, c.author_name, c.body, c.metadata FROM comments c"
            f" JOIN {kind}s x ON x.id = c.{kind}_id WHERE x.product_id = %s", (product_id,)))
    state["dependencies"] = sorted(
        (ext["task", a], ext["task", b], kind, str(metadata))
        for a, b, kind, metadata in conn.execute(
            "SELECT d.task_id, d.depends_on_task_id, d.dependency_type, d.metadata "
            "FROM task_dependencies d JOIN tasks t ON t.id = d.task_id "
            "WHERE t.product_id = %s", (product_id,)))
    return state


def _counts(result) -> dict[str, tuple[int, ...]]:
    return {kind: (c.created, c.updated, c.unchanged, c.removed)
            for kind, c in result.counts.items()}


@pytest.mark.parametrize("name", PARITY_FILES)
def test_api_import_writes_exactly_what_the_direct_import_writes(
        settings: Settings, conn, systech, live_server: LiveServer, name: str):
    direct = import_beads(settings, _options(name, "Direct"))
    via_api = import_beads(settings, _options(name, "ViaApi", live_server.url))

    assert _counts(via_api) == _counts(direct)
    assert sum(c[0] for c in _counts(direct).values()) > 0
    api_state = product_state(conn, systech["api"])
    assert api_state == product_state(conn, systech["direct"])
    assert api_state["epic"] or api_state["task"]


def test_update_via_api_matches_update_direct_and_reimport_changes_nothing(
        settings: Settings, conn, systech, live_server: LiveServer):
    for name in ("modern.jsonl", "modern_v2.jsonl"):
        import_beads(settings, _options(name, "Direct"))
        import_beads(settings, _options(name, "ViaApi", live_server.url))
    state = product_state(conn, systech["api"])
    assert state == product_state(conn, systech["direct"])
    assert state["tags"] and state["comments"] and state["dependencies"]

    before = conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()
    again = import_beads(settings, _options("modern_v2.jsonl", "ViaApi", live_server.url))
    assert all(c.created == c.updated == c.removed == 0 for c in again.counts.values())
    assert sum(c.unchanged for c in again.counts.values()) > 0
    assert (again.tags_created, again.comments_added, again.dependencies_added,
            again.dependencies_removed) == (0, 0, 0, 0)
    assert product_state(conn, systech["api"]) == state
    assert conn.execute("SELECT * FROM tasks ORDER BY id").fetchall() == before


def test_dry_run_via_api_counts_like_a_real_run_and_writes_nothing(
        settings: Settings, conn, systech, live_server: LiveServer):
    dry = import_beads(settings, _options("modern.jsonl", "ViaApi", live_server.url,
                                          dry_run=True))
    assert product_state(conn, systech["api"])["task"] == []
    real = import_beads(settings, _options("modern.jsonl", "ViaApi", live_server.url))
    assert _counts(dry) == _counts(real)


class _StopAfter(Reporter):
    """Cuts the API off as soon as the epics are through: a failure midway."""

    def __init__(self, server: LiveServer, marker: str) -> None:
        super().__init__(quiet=False)
        self.server, self.marker, self.lines = server, marker, []

    def line(self, text: str = "") -> None:
        self.lines.append(text)
        if text.startswith(self.marker):
            self.server.stop()


def test_rerun_after_api_failure_midway_finishes_without_duplicates(
        settings: Settings, conn, systech, live_server: LiveServer):
    options = _options("modern.jsonl", "ViaApi", live_server.url)
    prepared = prepare(options)
    client = ApiClient(live_server.url, retries=2, backoff_seconds=0)
    report = _StopAfter(live_server, "✅ Epics:")
    with pytest.raises(OpsError, match="failed 3 times"):
        write_via_api(settings, prepared, options, report, client=client, chunk_size=1)
    partial = product_state(conn, systech["api"])
    assert partial["epic"] and not partial["task"]

    live_server.start()
    import_beads(settings, options)
    import_beads(settings, _options("modern.jsonl", "Direct"))
    assert product_state(conn, systech["api"]) == product_state(conn, systech["direct"])


def test_unreachable_api_is_retried_with_backoff_then_one_line(settings: Settings, systech):
    waits: list[float] = []
    client = ApiClient(f"http://127.0.0.1:{free_port()}", retries=3, sleep=waits.append)
    options = _options("early.jsonl", "ViaApi", client.base_url)
    with pytest.raises(OpsError) as failure:
        write_via_api(settings, prepare(options), options, Reporter(quiet=True), client=client)
    assert waits == [0.5, 1.0, 2.0]
    assert "failed 4 times: ConnectError" in failure.value.message
    assert "tasklets-db serve" in failure.value.hint


def test_api_answering_503_is_retried_then_reported(settings: Settings, systech, api_settings):
    broken = LiveServer(type(api_settings)(
        ops=settings.with_url("postgresql://nobody@127.0.0.1:1/none"),
        secret_key=api_settings.secret_key))
    broken.start()
    try:
        waits: list[float] = []
        client = ApiClient(broken.url, retries=1, sleep=waits.append)
        with pytest.raises(OpsError, match=r"HTTP 503 \(database unavailable\)"):
            client.login(RAMESH, PASSWORD)
        assert waits == [0.5]
    finally:
        broken.stop()


# --- the command line, end to end against the live server ----------------------------------

def test_cli_import_via_api_prints_the_seed_lines(run_cli, systech, live_server: LiveServer,
                                                  conn):
    result = run_cli("import", "beads", "--via", "api", "--api-url", live_server.url,
                     "--file", str(FIXTURES / "modern.jsonl"), "--product", "ViaApi",
                     env={"TASKLETS_API_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = [
        "🚀 Starting Beads Import via API...",
        f"🔐 Authenticating as {RAMESH}...",
        f"✅ Authenticated successfully (User ID: {systech['ramesh']})",
        '📦 Finding "ViaApi" product...',
        f"✅ Found product: ViaApi (ID: {systech['api']})",
    ]
    assert [line for line in lines if line.startswith(("🚀", "🔐", "✅ Auth", "📦", "✅ Found"))] \
        == expected
    assert any(line.startswith("✅ Epics: ") for line in lines)
    assert any(line.startswith("✅ Tasks: ") for line in lines)
    assert lines[-1].startswith("✅ Beads import complete!")
    assert conn.execute("SELECT count(*) FROM tasks WHERE product_id = %s",
                        (systech["api"],)).fetchone()[0] > 0


def test_cli_wrong_password_says_check_the_credentials(run_cli, systech,
                                                       live_server: LiveServer):
    result = run_cli("import", "beads", "--via", "api", "--api-url", live_server.url,
                     "--file", str(FIXTURES / "early.jsonl"),
                     env={"TASKLETS_API_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert f"the API refused the login for {RAMESH}: check the credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_client_user_cannot_import(run_cli, systech, live_server: LiveServer):
    result = run_cli("import", "beads", "--via", "api", "--api-url", live_server.url,
                     "--email", "support@a.test", "--file", str(FIXTURES / "early.jsonl"),
                     "--product", "ViaApi", env={"TASKLETS_API_PASSWORD": PASSWORD})
    assert result.returncode == 1
    assert "not allowed to sync work items" in result.stderr


@pytest.mark.security
@pytest.mark.parametrize("app_env", ["test", ""])  # "": unset, which defaults to development
def test_cli_needs_the_password_unless_development_is_set(run_cli, cli_env, app_env: str):
    env = {k: v for k, v in cli_env.items() if k != "TASKLETS_API_PASSWORD"}
    result = run_cli("import", "beads", "--via", "api", "--file",
                     str(FIXTURES / "early.jsonl"), env={**env, "APP_ENV": app_env})
    assert result.returncode == 1
    assert "TASKLETS_API_PASSWORD is not set" in result.stderr


def test_cli_import_via_api_with_seeded_sample_data_and_default_login(
        run_cli, cli_env, api_settings, conn):
    """The seed's flow: `seed lookups` + `seed sample`, then the importer's defaults
    (ramesh@systech.com, the sample password under APP_ENV=development, product Tasklets)."""
    assert run_cli("seed", "lookups").returncode == 0
    assert run_cli("seed", "sample").returncode == 0
    server = LiveServer(api_settings)
    server.start()
    try:
        env = {k: v for k, v in cli_env.items() if k != "TASKLETS_API_PASSWORD"}
        result = run_cli("import", "beads", "--via", "api", "--api-url", server.url,
                         "--file", str(FIXTURES / "modern.jsonl"),
                         env={**env, "APP_ENV": "development"})
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    ramesh, product = conn.execute(
        "SELECT u.id, p.id FROM users u JOIN products p ON p.tenant_id = u.tenant_id "
        "WHERE u.email = 'ramesh@systech.com' AND p.name = 'Tasklets'").fetchone()
    assert f"✅ Authenticated successfully (User ID: {ramesh})" in result.stdout
    assert f"✅ Found product: Tasklets (ID: {product})" in result.stdout
    assert conn.execute("SELECT count(*) FROM epics WHERE product_id = %s AND "
                        "external_source = 'beads'", (product,)).fetchone()[0] > 0


def test_chunks_keep_order_and_respect_count_and_byte_limits():
    from ops.workitems.sync import chunks

    texts = ["a" * 10, "b" * 10, "c" * 10, "d" * 50, "e" * 10]
    assert list(chunks(texts, size=2, max_bytes=1000)) == [texts[0:2], texts[2:4], texts[4:]]
    # A byte budget of 25 splits before it would be exceeded; an oversized item goes alone.
    assert list(chunks(texts, size=10, max_bytes=25)) == [
        texts[0:2], texts[2:3], texts[3:4], texts[4:]]
