"""Tenant restore timings: one tenant holding about 10% of the rows restored alone, against a
full restore of the same database, and writes to another tenant during each.

Restoring identical rows costs a tenant restore next to nothing (it leaves them in place), so
each run first does what a restore is for: the tenant lost a fifth of its comments and a
tenth of its tasks were edited - or, in the second case, the whole tenant was reset. The full
restore starts from the same damage. Rounds alternate the full restore and each case.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg

from bench.measure import run_measured
from ops.backup.files import read_meta
from ops.seed.data import LOOKUP_TAGS
from ops.seed.volume import generate_volume

if TYPE_CHECKING:
    from bench.run import Bench, Case

TENANT = "Bench tenant"
SHARE = 0.1  # of all rows
OTHER_TENANT = 1  # SysTech, which `seed sample --scale` fills
WRITE_LOCK_TIMEOUT = "1s"
DAMAGE = ("DELETE FROM comments WHERE tenant_id = %(t)s AND id %% 5 = 0",
          "UPDATE tasks SET title = title || ' (edited)' WHERE tenant_id = %(t)s AND id %% 10 = 0")


def tenant_cases(bench: Bench, args: argparse.Namespace) -> tuple[list[Case], dict]:
    """The cases, and the other tenant's writes during a tenant and a full restore."""
    from bench.run import CLI, Case, Side, format_case

    url = bench.create_db("bench_tenant", template="bench_src")
    tenant_id = add_tenant(url, args.scale * SHARE / (1 - SHARE), args.random_seed)
    files = bench.work / "files"
    full, alone = files / "tenants-full.json", files / "tenant-alone.json"
    bench.cli(url, "backup", "--output", str(full))
    bench.cli(url, "backup", "--tenant", TENANT, "--output", str(alone))
    rows = read_meta(alone)["totalRows"]
    share = rows / read_meta(full)["totalRows"]
    env = bench.env(url)
    restore = [*CLI, "restore", "--no-safety-backup"]
    restore_full = [*restore, str(full)]
    restore_alone = [*restore, str(alone), "--tenant", TENANT]

    def damaged() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in DAMAGE:
                conn.execute(statement, {"t": tenant_id})
            conn.execute("VACUUM ANALYZE")  # no run inherits the last one's dead rows

    def emptied() -> None:
        bench.cli(url, "reset", "--tenant", TENANT, "--confirm")
        damaged()

    full_side = Side("tasklets-db restore (every tenant)")
    variants: list[tuple[str, Side, list[str], Callable[[], None]]] = [
        (f"restore --tenant ({share:.0%} of the rows; some changed)",
         Side("tasklets-db restore --tenant (tenant backup)"), restore_alone, damaged),
        (f"restore --tenant ({share:.0%} of the rows; tenant reset first)",
         Side("tasklets-db restore --tenant (tenant backup)"), restore_alone, emptied),
        (f"restore --tenant from a full backup ({share:.0%} of the rows; some changed)",
         Side("tasklets-db restore --tenant (full backup)"), [*restore, str(full), "--tenant",
                                                            TENANT], damaged),
    ]
    for _ in range(bench.runs):
        damaged()
        full_side.runs.append(run_measured(restore_full, env=env))
        for _, side, cmd, before in variants:
            before()
            side.runs.append(run_measured(cmd, env=env))
    cases = [Case(name, side, [full_side], rows) for name, side, _, _ in variants]
    cases[0].target = cases[1].target = "≤ 0.2 × the full restore"
    cases[0].sizes = {"tenant backup": alone.stat().st_size, "full backup": full.stat().st_size}
    cases[2].target = "reads the whole file: for information"
    for case in cases:
        print(format_case(case.summary()), flush=True)
    damaged()
    writes = {"restore --tenant": _writes_during(url, restore_alone, env)}
    damaged()
    writes["full restore"] = _writes_during(url, restore_full, env)
    print(f"Writes to another tenant during each: {json.dumps(writes)}", flush=True)
    return cases, writes


def add_tenant(url: str, scale: float, random_seed: int) -> int:
    """A second tenant with `scale` units of the volume seed (and the lookup tags, so its
    work items get item tags as SysTech's do); returns its id."""
    with psycopg.connect(url) as conn:
        tenant_id = conn.execute(
            "INSERT INTO tenants (name, slug, plan) VALUES (%s, 'bench-tenant', 'enterprise') "
            "RETURNING id", (TENANT,)).fetchone()[0]
        conn.cursor().executemany(
            "INSERT INTO tags (tenant_id, name, color, description) VALUES (%s, %s, %s, %s)",
            [(tenant_id, *tag) for tag in LOOKUP_TAGS])
        generate_volume(conn, tenant_id, scale=scale, random_seed=random_seed)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return tenant_id


def _writes_during(url: str, cmd: list[str], env: dict[str, str]) -> dict:
    """Run `cmd` while another session writes to OTHER_TENANT in a loop, each write allowed
    to wait WRITE_LOCK_TIMEOUT for a lock: how many went through, how many timed out
    waiting, how often the writer was seen waiting for a lock at all (pg_stat_activity,
    sampled), and the slowest write (a figure, not a target: the machine is shared)."""
    stats = {"writes": 0, "waited": 0, "lock_waits_seen": 0, "samples": 0, "slowest_ms": 0.0}
    stop = threading.Event()
    with psycopg.connect(url, autocommit=True) as conn, \
            psycopg.connect(url, autocommit=True) as watcher:
        task = conn.execute("SELECT min(id) FROM tasks WHERE tenant_id = %s",
                            (OTHER_TENANT,)).fetchone()[0]
        conn.execute(f"SET lock_timeout = '{WRITE_LOCK_TIMEOUT}'")
        pid = conn.info.backend_pid

        def watch() -> None:
            while not stop.is_set():
                # Locks a transaction holds to its end; not the brief table-extension lock
                # two inserters into one table may share.
                waiting = watcher.execute(
                    "SELECT wait_event_type = 'Lock' AND wait_event IN ('relation', 'tuple', "
                    "'transactionid') FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
                stats["samples"] += 1
                stats["lock_waits_seen"] += bool(waiting and waiting[0])
                time.sleep(0.005)

        def write() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    with conn.transaction():
                        conn.execute("INSERT INTO comments (tenant_id, task_id, body) "
                                     "VALUES (%s, %s, 'bench write')", (OTHER_TENANT, task))
                        conn.execute("UPDATE tasks SET updated_at = now() WHERE id = %s",
                                     (task,))
                    stats["writes"] += 1
                except psycopg.errors.LockNotAvailable:
                    stats["waited"] += 1
                stats["slowest_ms"] = round(max(stats["slowest_ms"],
                                                (time.perf_counter() - started) * 1000), 1)
                time.sleep(0.01)

        threads = [threading.Thread(target=write, daemon=True),
                   threading.Thread(target=watch, daemon=True)]
        for thread in threads:
            thread.start()
        try:
            run_measured(cmd, env=env)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    return stats
