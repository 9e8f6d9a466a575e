"""Secrets generated per installation, never a published default: the anonymization salt make
writes into a new .env (0600), and the warning when the published development salt is used."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ops.anonymize.mask import DEVELOPMENT_SALT
from ops.core.config import PROJECT_ROOT
from ops.core.envfile import env_value, set_env_value

WARNING = "ANONYMIZE_SALT is the published development value"


def make_env_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", f"ENV_FILE={path}", str(path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_make_writes_a_private_env_file_with_a_salt_of_its_own(tmp_path: Path):
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    for path in (first, second):
        done = make_env_file(path)
        assert done.returncode == 0, done.stderr
        assert (path.stat().st_mode & 0o777) == 0o600
    salts = [env_value(path, "ANONYMIZE_SALT") for path in (first, second)]
    assert all(s and re.fullmatch(r"[0-9a-f]{64}", s) for s in salts) and salts[0] != salts[1]
    example = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    assert [line for line in first.read_text().splitlines()
            if not line.startswith("ANONYMIZE_SALT=")] == \
        [line for line in example if not line.startswith("ANONYMIZE_SALT=")]


def test_set_env_value_replaces_or_appends_and_makes_the_file_private(tmp_path: Path):
    path = tmp_path / ".env"
    path.write_text("A=1\nexport SECRET=old\n# keep me\n")
    path.chmod(0o644)
    set_env_value(path, "SECRET", "new")
    set_env_value(path, "ADDED", "x", comment="why")
    assert path.read_text() == "A=1\nSECRET=new\n# keep me\n# why\nADDED=x\n"
    assert (path.stat().st_mode & 0o777) == 0o600 and list(tmp_path.iterdir()) == [path]


def test_the_published_development_salt_warns_and_a_generated_one_does_not(run_cli, conn):
    conn.execute("INSERT INTO tenants (name, slug) VALUES ('Initech', 'initech')")
    for salt in ("", DEVELOPMENT_SALT):
        done = run_cli("backup", "--anonymize", env={"APP_ENV": "development",
                                                     "ANONYMIZE_SALT": salt})
        assert done.returncode == 0, done.stderr
        assert WARNING in done.stderr
    done = run_cli("backup", "--anonymize", env={"APP_ENV": "development",
                                                 "ANONYMIZE_SALT": "x" * 43})
    assert done.returncode == 0 and WARNING not in done.stderr + done.stdout
