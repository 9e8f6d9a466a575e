"""Secrets in storage URLs never reach output: every secret form (query signatures, SAS
tokens, userinfo) through every command's lines, `--json`, the scheduler's log and header,
webhook payloads, the metrics and the API's error bodies."""

from __future__ import annotations

import pytest
from support.webhook import receiver

from ops.backup.freshness import allowed_age
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.masking import mask_secrets
from ops.core.output import print_json
from ops.schedule.cycle import FAILURE, CycleResult
from ops.schedule.metrics import BackupMetrics
from ops.schedule.notify import Notifier, Redactor

pytestmark = pytest.mark.security

# Each form with the secrets it carries (and a part that must stay readable).
SECRET_FORMS = [
    ("az://backups/nightly?sv=2024-05-04&sp=rwl&sig=AzSigS3cr3t%2Bx%3D", ["AzSigS3cr3t"],
     "az://backups/nightly"),
    ("azure://backups/nightly?se=2030-01-01&sig=AzureSigS3cr3t", ["AzureSigS3cr3t"],
     "azure://backups/nightly"),
    ("https://acct.blob.core.windows.net/backups/n?sp=r&sig=BlobSigS3cr3t%3D",
     ["BlobSigS3cr3t"], "acct.blob.core.windows.net"),
    ("s3://bucket/db?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIACREDS3CRET%2F"
     "20261207%2Fus-east-1%2Fs3&X-Amz-Signature=0a1b2c3dS1GS3CRET&X-Amz-Security-Token=TokS3cr3t",
     ["AKIACREDS3CRET", "0a1b2c3dS1GS3CRET", "TokS3cr3t"], "s3://bucket/db"),
    ("s3://AKIAUSERS3CRET:AwsKeyS3cr3t@bucket/db", ["AKIAUSERS3CRET", "AwsKeyS3cr3t"],
     "bucket/db"),
    ("gs://bucket/db?token=GcsTokS3cr3t", ["GcsTokS3cr3t"], "gs://bucket/db"),
    ("az://AcctS3cr3t:AzKeyS3cr3t@container/db", ["AcctS3cr3t", "AzKeyS3cr3t"],
     "container/db"),
    ("https://user:HttpsPwS3cr3t@storage.example/backups", ["HttpsPwS3cr3t"],
     "storage.example/backups"),
]
IDS = [form[0].split(":")[0] + str(i) for i, form in enumerate(SECRET_FORMS)]


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret} leaked through {where}:\n{text}"


@pytest.mark.parametrize(("form", "secrets", "kept"), SECRET_FORMS, ids=IDS)
def test_mask_secrets_masks_every_form_and_keeps_the_rest(form: str, secrets: list[str],
                                                          kept: str):
    masked = mask_secrets(f"cannot read {form}: denied")
    assert_clean(masked, secrets, "mask_secrets")
    assert kept in masked and masked.startswith("cannot read ") and "***" in masked


def test_mask_secrets_leaves_ordinary_text_and_database_user_names_alone():
    text = 'Key (email)=(ann@example.com) already exists; mytoken=1; tag "sig"'
    assert mask_secrets(text) == text
    assert mask_secrets("postgresql://app:pw@db:5432/x host=db password='a b' user=app") == \
        "postgresql://app:***@db:5432/x host=db password=*** user=app"


# Commands that read BACKUP_DIR, and commands that take a location argument.
WITH_BACKUP_DIR = [
    ("backup",), ("backup", "--json"), ("backups",), ("backups", "--json"),
    ("backups", "check"), ("prune", "--keep-last", "1"), ("verify", "latest"),
    ("restore", "latest", "--yes"), ("status",), ("compare", "latest"),
]
WITH_ARGUMENT = [
    ("restore", "{}"), ("verify", "{}"), ("backup", "--output", "{}"),
    ("backup", "--json", "--output", "{}"), ("compare", "{}"), ("copy", "--tenant", "x",
                                                                  "--to", "{}"),
]


@pytest.mark.parametrize(("form", "secrets", "kept"), SECRET_FORMS, ids=IDS)
def test_no_command_echoes_a_storage_secret(run_cli, db_url: str, form: str,
                                           secrets: list[str], kept: str):
    runs = [(args, run_cli(*args, env={"BACKUP_DIR": form})) for args in WITH_BACKUP_DIR]
    runs += [(args, run_cli(*(a.format(form) for a in args))) for args in WITH_ARGUMENT]
    for args, done in runs:
        assert done.returncode != 0 or args[0] in ("status",), (args, done.stderr)
        assert_clean(done.stdout + done.stderr, secrets, " ".join(args))
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("form", "secrets", "kept"), SECRET_FORMS, ids=IDS)
def test_the_scheduler_log_header_payloads_and_metrics_never_carry_a_storage_secret(
        run_cli, settings: Settings, form: str, secrets: list[str], kept: str):
    runs = [run_cli("schedule", "--once", *log, env={"BACKUP_DIR": form})
            for log in ((), ("--log-format", "json"))]
    assert [r.returncode for r in runs] == [1, 1]
    for done in runs:
        assert_clean(done.stdout + done.stderr, secrets, "scheduler output")
    assert "⏰ Scheduler" in runs[0].stdout and "***" in runs[0].stdout  # the header, masked
    # A cycle that fails on the store (an SDK's message quoting the URL): its JSON log line,
    # its failure payload and the metrics written after it.
    with receiver() as hook:
        notifier = Notifier(hook.url, Redactor(settings))
        assert notifier.send("failure", {"error": f"cannot upload to {form}: 403 ({form})",
                                         "location": form}) is None
        sent = b"".join(r.body for r in hook.requests).decode()
    assert "failure" in sent
    assert_clean(sent, secrets, "webhook payloads")
    # the metrics' own failures (an unreachable Pushgateway named with credentials)
    problems = BackupMetrics(allowed_age("")).publish(
        settings, pushgateway="http://pg:PushS3cr3t@127.0.0.1:1/?token=PushTokS3cr3t")
    assert problems
    assert_clean(" ".join(problems), ["PushS3cr3t", "PushTokS3cr3t"], "metrics problems")


def test_the_scheduler_json_log_line_masks_storage_secrets(capsys: pytest.CaptureFixture):
    for form, secrets, _ in SECRET_FORMS:
        print_json(CycleResult(started="now", stage="backup", result=FAILURE,
                               error=f"cannot read {form}", backup=form), indent=False)
        assert_clean(capsys.readouterr().out, secrets, "the JSON log")


def test_api_error_bodies_mask_storage_secrets():
    import asyncio

    from api.errors import _ops_error  # noqa: PLC2701 - the API's one mapping of OpsError

    form, secrets, _ = SECRET_FORMS[3]
    response = asyncio.run(_ops_error(None, OpsError(f"cannot read {form}",  # type: ignore
                                                     hint=f"check {form}")))
    assert_clean(response.body.decode(), secrets, "the API")


def test_recorded_verdicts_never_carry_a_storage_secret(backup_dir):
    from ops.backup.archive import Archive
    from ops.backup.verdicts import BAD

    archive = Archive.at(backup_dir)
    for i, (form, secrets, _) in enumerate(SECRET_FORMS):
        ref = archive.ref(f"backup-2026-01-01T00-00-0{i}-000Z.json")
        archive.record_verdict(ref, BAD, problem=f"reading {form} failed: 403 ({form})")
        written = (backup_dir / f"{ref.name}.{BAD}").read_text()
        assert_clean(written, secrets, "a verdict")
        assert '"verdict":"bad"' in written and "***" in written
