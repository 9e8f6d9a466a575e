"""Beads import timings: N generated issues, directly and through the REST API."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

from ops.dev.beads_fixtures import write_synthetic
from ops.dev.cluster import free_port

if TYPE_CHECKING:
    from bench.run import Bench, Case

SECRET = "bench-secret-key-not-for-production-0123456789"
PASSWORD = "Systech@123"


def beads_cases(bench: Bench, args: argparse.Namespace) -> list[Case]:
    from bench.run import CLI

    issues = bench.work / "files" / "issues.jsonl"
    write_synthetic(issues, args.beads_issues)
    template = "bench_beads_tpl"
    tpl_url = bench.create_db(template)
    bench.cli(tpl_url, "push")
    bench.cli(tpl_url, "seed", "lookups")
    bench.cli(tpl_url, "seed", "sample")
    target = bench.url("bench_beads")

    def fresh_target() -> None:
        bench.create_db("bench_beads", template=template)

    fresh_target()
    env = bench.env(target, SECRET_KEY=SECRET, TASKLETS_API_PASSWORD=PASSWORD)
    direct = bench.compare(
        f"import beads ({args.beads_issues:,} issues, direct)", args.beads_issues,
        ("tasklets-db import beads", [*CLI, "import", "beads", "--file", str(issues)], env), [],
        before=fresh_target)
    direct.target = "< 5 s"

    port = free_port()
    server = subprocess.Popen([*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/api/health")
        via_api = bench.compare(
            f"import beads ({args.beads_issues:,} issues, via API)", args.beads_issues,
            ("tasklets-db import beads --via api",
             [*CLI, "import", "beads", "--via", "api", "--api-url", f"http://127.0.0.1:{port}",
              "--file", str(issues)], env), [],
            before=fresh_target)
        via_api.target = "< 60 s"
    finally:
        server.terminate()
        server.wait(timeout=30)
    return [direct, via_api]


def _wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"the API did not become healthy at {url}")
