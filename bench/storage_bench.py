"""Backups off the host and encrypted, against the same on local disk: S3 (moto's server on
loopback, as a stand-in for a bucket) vs a directory, and age-encrypted vs plain."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pyrage import x25519

from ops.dev.cluster import free_port

if TYPE_CHECKING:
    from bench.run import Bench, Case

BUCKET = "bench-backups"


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with a bucket; the variables that reach it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=log, stderr=log)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.put(f"{endpoint}/{BUCKET}", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                   "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
        finally:
            process.kill()
            process.wait(10)


def storage_cases(bench: Bench, rows: int, src: str, dst: str) -> list[Case]:
    """One stream each side (a bucket backup reads through one connection by default)."""
    from bench.run import CLI

    local = bench.work / "local-backups"
    local.mkdir()
    cases = []
    with moto_s3() as s3:
        remote = {**s3, "BACKUP_DIR": f"s3://{BUCKET}/bench"}
        case = bench.compare(
            "backup to S3 (moto, loopback)", rows,
            ("tasklets-db backup → s3://", [*CLI, "backup", "--compress", "--jobs", "1"],
             bench.env(src, **remote)),
            [("tasklets-db backup → local disk",
              [*CLI, "backup", "--compress", "--jobs", "1"],
              bench.env(src, BACKUP_DIR=str(local)))])
        case.target = "≤ 1.3 × local disk"
        cases.append(case)

        def empty_dst() -> None:
            bench.truncate_all(dst)

        case = bench.compare(
            "restore from S3 (moto, loopback)", rows,
            ("tasklets-db restore ← s3://", [*CLI, "restore", "latest", "--no-safety-backup"],
             bench.env(dst, **remote)),
            [("tasklets-db restore ← local disk",
              [*CLI, "restore", "latest", "--no-safety-backup"],
              bench.env(dst, BACKUP_DIR=str(local)))], before=empty_dst)
        case.target = "≤ 1.3 × local disk"
        cases.append(case)
    cases.append(_encryption_case(bench, rows, src, local))
    return cases


def _encryption_case(bench: Bench, rows: int, src: str, local: Path) -> Case:
    from bench.run import CLI

    identity = x25519.Identity.generate()
    key = bench.work / "bench.key"
    key.write_text(f"{identity}\n")
    os.chmod(key, 0o600)
    case = bench.compare(
        "backup --compress, age-encrypted", rows,
        ("tasklets-db backup (encrypted)", [*CLI, "backup", "--compress"],
         bench.env(src, BACKUP_DIR=str(local), BACKUP_ENCRYPT_TO=str(identity.to_public()))),
        [("tasklets-db backup (plain)", [*CLI, "backup", "--compress"],
          bench.env(src, BACKUP_DIR=str(local)))])
    case.target = "≤ 1.15 × plain"
    return case
