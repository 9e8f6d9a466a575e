"""The optional dependencies (pyproject extras): a command that needs one that is not installed
says which extra to install, in one line, instead of an import traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI with the named top-level packages made unimportable, as on an install without
# their extra (a None entry in sys.modules makes `import x` raise ModuleNotFoundError).
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from ops.cli.main import main
main(sys.argv[2:])
"""


def run_without(missing: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT, missing, *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("location", "missing", "extra"), [
    ("s3://bucket/backups", "boto3,botocore", "s3"),
    ("gs://bucket/backups", "google", "gcs"),
    ("az://container/backups", "azure", "azure"),
])
def test_a_store_whose_sdk_is_missing_names_the_extra(
        location: str, missing: str, extra: str, cli_env: dict[str, str]) -> None:
    done = run_without(missing, "backups", env={**cli_env, "BACKUP_DIR": location})
    assert done.returncode == 1
    assert f"pip install 'tasklets-ops[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 2  # the line and its hint


def test_the_api_without_its_extra_names_it(cli_env: dict[str, str]) -> None:
    done = run_without("fastapi,uvicorn,starlette", "serve", "--port", "8999", env=cli_env)
    assert done.returncode == 1
    assert "pip install 'tasklets-ops[api]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_extras_cover_the_sdks_and_all_installs_them() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for sdk in ("boto3", "google-cloud-storage", "azure-storage-blob", "fastapi", "uvicorn"):
        assert sdk not in runtime  # an extra, not a dependency of every install
    extras = project["optional-dependencies"]
    assert extras["all"] == ["tasklets-ops[s3,gcs,azure,api]"]
    requirements = subprocess.run(
        [sys.executable, str(ROOT / "docker/ops/requirements.py"), "all"], cwd=ROOT,
        capture_output=True, text=True, check=True).stdout
    for sdk in ("boto3", "google-cloud-storage", "azure-storage-blob", "fastapi", "uvicorn"):
        assert sdk in requirements  # the image installs every extra
