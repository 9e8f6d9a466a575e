"""The deployment examples in deploy/ are what they claim: a Kubernetes CronJob with the fields
Kubernetes requires (checked against a JSON schema of them; no cluster needed), a GitHub
Actions workflow with the keys a workflow needs, and a crontab line cron accepts - each
running one scheduler cycle with options the CLI has, and no secret written in."""

from __future__ import annotations

import shlex

import jsonschema
import pytest
import yaml
from croniter import croniter

from ops.core.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"

_STRING = {"type": "string", "minLength": 1}
_ENV_VAR = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
        "value": {"type": "string"},
        "valueFrom": {"type": "object", "required": ["secretKeyRef"], "properties": {
            "secretKeyRef": {"type": "object", "required": ["name", "key"], "properties": {
                "name": _STRING, "key": _STRING, "optional": {"type": "boolean"}}}}},
    },
    "oneOf": [{"required": ["value"]}, {"required": ["valueFrom"]}],
}
_CONTAINER = {
    "type": "object", "required": ["name", "image"],
    "properties": {"name": _STRING, "image": _STRING,
                   "args": {"type": "array", "items": {"type": "string"}},
                   "env": {"type": "array", "items": _ENV_VAR}},
}
_POD_SPEC = {
    "type": "object", "required": ["containers", "restartPolicy"],
    "properties": {"restartPolicy": {"enum": ["OnFailure", "Never"]},
                   "containers": {"type": "array", "minItems": 1, "items": _CONTAINER}},
}
_JOB_SPEC = {
    "type": "object", "required": ["template"],
    "properties": {"backoffLimit": {"type": "integer", "minimum": 0},
                   "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                   "template": {"type": "object", "required": ["spec"],
                                "properties": {"spec": _POD_SPEC}}},
}
# The parts of batch/v1 CronJob (Kubernetes API reference) the manifest uses, as required there.
CRONJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "batch/v1"},
        "kind": {"const": "CronJob"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                     "maxLength": 52}}},
        "spec": {"type": "object", "required": ["schedule", "jobTemplate"], "properties": {
            "schedule": _STRING,
            "timeZone": _STRING,
            "concurrencyPolicy": {"enum": ["Allow", "Forbid", "Replace"]},
            "startingDeadlineSeconds": {"type": "integer", "minimum": 0},
            "successfulJobsHistoryLimit": {"type": "integer", "minimum": 0},
            "failedJobsHistoryLimit": {"type": "integer", "minimum": 0},
            "jobTemplate": {"type": "object", "required": ["spec"],
                            "properties": {"spec": _JOB_SPEC}},
        }},
    },
}
SECRETS = ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "BACKUP_NOTIFY_URL")


def command_options(*path: str) -> set[str]:
    """The options of `tasklets-db PATH...`."""
    from typer.main import get_command

    from ops.cli.main import app

    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


def test_the_kubernetes_cronjob_matches_the_schema_and_runs_one_cycle():
    manifest = yaml.safe_load((DEPLOY / "kubernetes" / "backup-cronjob.yaml").read_text())

    jsonschema.validate(manifest, CRONJOB_SCHEMA)
    assert croniter.is_valid(manifest["spec"]["schedule"])
    (container,) = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["tasklets-db", "schedule", "--once"]
    assert {a for a in args if a.startswith("--")} <= command_options("schedule")
    env = {e["name"]: e for e in container["env"]}
    for name in SECRETS:  # from a Secret, never written in the manifest
        assert "valueFrom" in env[name], name


# The parts of apps/v1 Deployment the capture manifest uses, as required there.
DEPLOYMENT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "apps/v1"},
        "kind": {"const": "Deployment"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "required": ["selector", "template"], "properties": {
            "replicas": {"const": 1},
            "strategy": {"type": "object", "properties": {"type": {"const": "Recreate"}}},
            "selector": {"type": "object", "required": ["matchLabels"]},
            "template": {"type": "object", "required": ["metadata", "spec"], "properties": {
                "spec": {**_POD_SPEC, "required": ["containers"],
                         "properties": {**_POD_SPEC["properties"],
                                        "restartPolicy": {"const": "Always"}}}}},
        }},
    },
}


def test_the_kubernetes_capture_deployment_matches_the_schema_and_runs_capture():
    manifest = yaml.safe_load((DEPLOY / "kubernetes" / "capture-deployment.yaml").read_text())

    jsonschema.validate(manifest, DEPLOYMENT_SCHEMA)
    spec = manifest["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["tasklets-db", "capture"]
    assert {a for a in args if a.startswith("--")} <= command_options("capture")
    assert args[args.index("--metrics-port") + 1] == str(container["ports"][0]["containerPort"])
    env = {e["name"]: e for e in container["env"]}
    for name in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert "valueFrom" in env[name], name


def test_the_github_actions_workflow_is_scheduled_and_runs_one_cycle():
    workflow = yaml.safe_load((DEPLOY / "github-actions" / "nightly-backup.yml").read_text())

    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert croniter.is_valid(on["schedule"][0]["cron"])
    assert {"name", "jobs", "permissions"} <= set(workflow)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] and job["timeout-minutes"] > 0
    assert all("uses" in step or "run" in step for step in job["steps"])
    runs = [shlex.split(step["run"]) for step in job["steps"] if "run" in step]
    cycle = next(r for r in runs if r[:2] == ["tasklets-db", "schedule"])
    assert "--once" in cycle
    assert {a for a in cycle if a.startswith("--")} <= command_options("schedule")
    assert ["tasklets-db", "backups", "check", "--max-age", "26h"] in runs
    for name in SECRETS:
        assert job["env"][name].startswith("${{ secrets."), name


def test_the_app_tests_workflow_builds_the_template_once_and_tests_in_parallel():
    from typer.main import get_command

    from ops.cli.main import app

    workflow = yaml.safe_load((DEPLOY / "github-actions" / "app-tests.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["services"]["postgres"]["image"] and job["timeout-minutes"] > 0
    runs = [shlex.split(line) for step in job["steps"] if "run" in step
            for line in step["run"].splitlines() if line.strip()]
    testdb = get_command(app).commands["testdb"].commands  # type: ignore[attr-defined]
    serve = next(r for r in runs if r[1:3] == ["tasklets-db", "testdb"] or r[:3] == [
        "nohup", "tasklets-db", "testdb"])
    assert serve[3] == "serve"
    options = {opt for param in testdb["serve"].params for opt in param.opts}
    assert {a for a in serve if a.startswith("--")} <= options
    ensure = next(r for r in runs if r[:3] == ["tasklets-db", "testdb", "ensure"])
    assert ensure[3:] == [a for a in serve[4:] if a in ("--seed", "lookups", "sample")]
    parallel = next(r for r in runs if r[:2] == ["node", "--test"])
    assert int(parallel[2].split("=")[1]) > 1  # several workers against the one pool
    assert job["env"]["TESTDB_SERVER"].startswith("http://127.0.0.1:")


def test_the_crontab_line_is_a_valid_schedule_running_a_make_target():
    lines = [line for line in (DEPLOY / "cron" / "tasklets-backup.crontab").read_text()
             .splitlines() if line.strip() and not line.startswith("#")]

    (line,) = lines
    fields = line.split(maxsplit=5)
    assert croniter.is_valid(" ".join(fields[:5]))
    command = fields[5]
    assert "make -s db-schedule" in command and "--once" in command
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "\ndb-schedule:" in makefile


@pytest.mark.parametrize("path", sorted(p.relative_to(DEPLOY) for p in DEPLOY.rglob("*")
                                         if p.is_file()))
def test_the_docs_show_every_deployment_example(path):
    docs = "\n".join(page.read_text() for page in (PROJECT_ROOT / "docs").rglob("*.md"))
    assert f"deploy/{path}" in docs
