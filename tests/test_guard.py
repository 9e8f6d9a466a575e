"""The production marker: never downgraded implicitly, and obeyed whatever APP_ENV says."""

from __future__ import annotations

import psycopg
import pytest

from ops.core import guard

pytestmark = pytest.mark.security


def _marker(conn: psycopg.Connection) -> str | None:
    return guard.stored_environment(conn)


def test_push_without_app_env_keeps_a_production_marker_and_reset_still_refuses(run_cli, conn):
    assert run_cli("push", env={"APP_ENV": "production"}).returncode == 0
    assert _marker(conn) == "production"
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('keep me', 'keep-me')")

    pushed = run_cli("push", env={"APP_ENV": ""})
    assert pushed.returncode == 0, pushed.stderr
    assert "stays marked production" in pushed.stdout
    assert _marker(conn) == "production"

    for app_env in ("", "test", "development"):
        refused = run_cli("reset", "--confirm", env={"APP_ENV": app_env})
        assert refused.returncode == 2, refused.stdout
        assert "environment marker" in refused.stderr
    assert conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1


def test_push_changes_a_production_marker_only_with_allow_production(run_cli, conn):
    run_cli("push", env={"APP_ENV": "production"})
    assert run_cli("push", env={"APP_ENV": "test"}).returncode == 0
    assert _marker(conn) == "production"
    changed = run_cli("push", "--allow-production", env={"APP_ENV": "test"})
    assert changed.returncode == 0, changed.stderr
    assert _marker(conn) == "test"


def test_push_may_always_raise_the_marker_to_production(run_cli, conn):
    run_cli("push", env={"APP_ENV": "development"})
    assert _marker(conn) == "development"
    run_cli("push", env={"APP_ENV": "production"})
    assert _marker(conn) == "production"
