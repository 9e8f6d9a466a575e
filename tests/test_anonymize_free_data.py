"""Anonymization reaches personal data wherever the app lets people put it: JSON metadata
written through the API, external ids, beads' raw fields (repository paths, non-text labels);
and `anonymize check` / `backup --anonymize` find email- and path-like values a sample of
anonymized rows would still give away, naming table, field and row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from support.api import World, auth
from support.beads import run_import, write_jsonl

from ops.anonymize.policy import DEFAULT_POLICY, load_policy
from ops.backup.create import backup
from ops.backup.leaks import check_snapshot_policy, suspicious_fields
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

pytest_plugins = ["support.api_fixtures"]

SALT = "test-salt-0123456789abcdef"
PERSONAL = ("jane.roe@customer.example", "Jane Roe", "/home/janeroe/code/secret-repo",
            "C:\\Users\\janeroe\\repo", "4711", "bob@corp.example")


@pytest.fixture
def salted(settings: Settings) -> Settings:
    return replace(settings, anonymize_salt=SALT)


def snapshot(settings: Settings, name: str = "snap.json", policy: Path | None = None) -> bytes:
    made = backup(settings, output=settings.backup_dir / name, anonymize=load_policy(policy))
    assert made.path is not None
    return made.path.read_bytes()


def api_written(client: TestClient, world: World) -> None:
    """A task, an epic and a tag written through the API with personal data in free fields."""
    headers = auth(client, "dev@a.test")
    epic = client.post("/api/epics", headers=headers, json={
        "productId": world.product_a, "title": "Epic", "externalId": "jane.roe@customer.example",
        "metadata": {"owner": {"email": "jane.roe@customer.example", "name": "Jane Roe"},
                     "checkout": "/home/janeroe/code/secret-repo"}})
    assert epic.status_code == 201, epic.text
    task = client.post("/api/tasks", headers=headers, json={
        "productId": world.product_a, "epicId": epic.json()["id"], "title": "Task",
        "externalSource": "crm", "externalId": "bob@corp.example",
        "metadata": {"contact": "Jane Roe <jane.roe@customer.example>", "seats": 3,
                     "component": "billing", "paths": ["C:\\Users\\janeroe\\repo"]}})
    assert task.status_code == 201, task.text


BEADS_ISSUE = {
    "id": "bd-p1", "title": "Fix the thing", "status": "open", "priority": 1,
    "issue_type": "task", "created_at": "2025-01-02T03:04:05Z",
    "updated_at": "2025-01-02T03:04:05Z", "assignee": "Jane Roe",
    "source_repo": "/home/janeroe/code/secret-repo", "labels": [4711, "frontend"],
    "external_ref": "mailto:jane.roe@customer.example",
    "metadata": {"reporter": "bob@corp.example"},
}


def test_api_metadata_external_ids_and_beads_fields_are_masked_and_the_snapshot_restores(
        salted: Settings, api_client: TestClient, world: World, conn: psycopg.Connection,
        tmp_path: Path, other_db_url: str):
    api_written(api_client, world)
    run_import(salted, write_jsonl(tmp_path / "issues.jsonl", BEADS_ISSUE))
    stored = conn.execute("SELECT metadata::text FROM tasks WHERE external_id = 'bd-p1'"
                          ).fetchone()
    assert stored and "secret-repo" in stored[0] and "4711" in stored[0]  # the import kept them

    raw = snapshot(salted)
    for value in PERSONAL:
        assert value.encode() not in raw and json.dumps(value).encode() not in raw, value
    rows = [json.loads(line.rstrip(b",")) for line in raw.splitlines()
            if b'"externalSource":"crm"' in line or b'"component"' in line]
    (task,) = rows
    assert task["metadata"]["component"] == "billing" and task["metadata"]["seats"] == 3
    assert len(task["externalId"]) == 32  # keyed hash of the email
    beads = next(json.loads(line.rstrip(b",")) for line in raw.splitlines()
                 if b'"beads"' in line)["metadata"]["beads"]
    assert beads["status"] == "open" and beads["priority"] == 1  # the vocabulary stays
    assert all(isinstance(label, str) and len(label) == 32 for label in beads["labels"])
    restore(replace(salted, database_url=other_db_url), salted.backup_dir / "snap.json",
            safety_backup=False, allow_anonymized=True)


def test_keep_on_a_json_column_is_refused(salted: Settings, conn: psycopg.Connection,
                                          tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text().replace(
        'metadata = { transformer = "json", keys = { "channel" = "keep" } }',
        'metadata = "keep"'))
    with pytest.raises(OpsError) as raised:
        snapshot(salted, policy=policy)
    assert "tickets.metadata is jsonb" in raised.value.message
    assert "keep is not possible" in raised.value.message
    assert list(salted.backup_dir.iterdir()) == []


def test_check_and_backup_name_where_sampled_values_still_look_personal(
        salted: Settings, api_client: TestClient, world: World, tmp_path: Path, run_cli):
    api_written(api_client, world)
    with psycopg.connect(salted.database_url, autocommit=True) as conn:
        conn.execute("UPDATE tasks SET labels = ARRAY['ops', 'ana@corp.example'] "
                     "WHERE external_source = 'crm'")
        task_id = conn.execute("SELECT id FROM tasks WHERE external_source = 'crm'"
                               ).fetchone()[0]
    policy = tmp_path / "policy.toml"
    # a policy that keeps what it should not: the labels (kept by the default policy too),
    # and external ids
    policy.write_text(DEFAULT_POLICY.read_text().replace(
        'external_id = "identifier"', 'external_id = "keep"'))

    with pytest.raises(OpsError) as raised:
        check_snapshot_policy(salted, load_policy(policy))
    message = raised.value.message
    assert f"tasks.labels (id {task_id}): email-like" in message
    assert "tasks.externalId" in message and "epics.externalId" in message
    assert list(salted.backup_dir.iterdir()) == []

    for args in (("anonymize", "check"), ("backup", "--anonymize")):
        done = run_cli(*args, "--policy", str(policy), env={"ANONYMIZE_SALT": SALT})
        assert done.returncode == 1, done
        first, *rest = done.stderr.strip().splitlines()
        assert "still look personal" in first and f"tasks.labels (id {task_id})" in first
        assert len(rest) == 1 and str(policy) in rest[0]
    assert list(salted.backup_dir.iterdir()) == []


def test_check_passes_the_default_policy_on_api_and_beads_data(
        salted: Settings, api_client: TestClient, world: World, tmp_path: Path, run_cli):
    api_written(api_client, world)
    done = run_cli("anonymize", "check")
    assert done.returncode == 0, done.stderr
    assert "no email- or path-like value" in done.stdout


def test_path_and_email_patterns_leave_fakes_and_urls_alone():
    allowed = {"example.test"}
    clean = {"e": "ana.lee.123@example.test", "u": "https://acme-1.example.test/a/b",
             "t": "and/or 1/2 lorem ipsum", "d": "2025-01-02T03:04:05Z"}
    assert list(suspicious_fields(clean, allowed)) == []
    found = dict(suspicious_fields({"a": {"b": ["x", "me@corp.example"]}, "p": "see ~/work/repo",
                            "w": "C:\\Users\\ana\\x", "h": "/home/ana/x"}, allowed))
    assert found == {"a.b": "email-like", "p": "path-like", "w": "path-like",
                     "h": "path-like"}
