"""Point-in-time tenant restore: `restore --tenant T --at latest` (the tenant's backup, then the
changes `capture` stored after it) against the plain tenant restore of the same backup.

The tenant holds about 10% of the rows (as in the tenant case). After its backup a write load
runs: each transaction edits a task, adds a comment and every fifth deletes one, in the tenant
or (nine times in ten) in the other tenant, as a busy app would. `capture --once` stores it as
change segments. Every run starts from the same damage as the tenant case's.

A second plain side restores a tenant backup taken after the load (kept out of the store, so
`--at latest` does not pick it): the tenant as it is at the time restored to, rows added by the
load included. The replay's own cost per transaction (point-in-time minus the plain restore of
the same backup) gives the estimate for an hour of the load, reported beside the ratios.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import TYPE_CHECKING

import psycopg

from bench.measure import run_measured
from bench.tenant_bench import DAMAGE, SHARE, TENANT, add_tenant
from ops.backup.archive import Archive

if TYPE_CHECKING:
    from bench.run import Bench, Case

OTHER_TENANT = 1


def pitr_cases(bench: Bench, args: argparse.Namespace) -> tuple[list[Case], dict]:
    from bench.run import CLI, Case, Side, format_case

    url = bench.create_db("bench_pitr", template="bench_src")
    tenant_id = add_tenant(url, args.scale * SHARE / (1 - SHARE), args.random_seed)
    store = bench.work / "pitr-store"
    store.mkdir()
    extra = {"BACKUP_DIR": str(store), "CAPTURE_SLOT": "bench_pitr"}
    env = bench.env(url, **extra)
    try:
        bench.cli(url, "capture", "--once", **extra)  # the slot, and capture's first backup
        # into the store, so `--at` starts from this backup too (the newest holding the
        # tenant), not from capture's full backup: both sides read the same tenant backup
        bench.cli(url, "backup", "--tenant", TENANT, **extra)
        archive = Archive.at(store)
        found = archive.latest_for_tenant(TENANT)
        if found is None or archive.facts(found).tenant is None:
            raise RuntimeError(f"the tenant backup is not the newest holding {TENANT}")
        alone = store / found.ref.name
        tps = _write_load(url, tenant_id, args.pitr_transactions, args.random_seed)
        started = time.perf_counter()
        bench.cli(url, "capture", "--once", **extra)
        captured_s = time.perf_counter() - started
        after = bench.work / "files" / "pitr-tenant-after-load.json"
        bench.cli(url, "backup", "--tenant", TENANT, "--output", str(after), **extra)
        segments = sorted(store.glob("changes-*.jsonl.zst"))
        facts = {"transactions": args.pitr_transactions, "write_tps": round(tps),
                 "load_seconds": round(args.pitr_transactions / tps, 1),
                 "segments": len(segments),
                 "segment_bytes": sum(p.stat().st_size for p in segments),
                 "capture_once_seconds": round(captured_s, 2)}
        restore = [*CLI, "restore", "--no-safety-backup", "--tenant", TENANT]
        plain = Side("tasklets-db restore --tenant (tenant backup)")
        at = Side("tasklets-db restore --tenant --at latest (same backup + changes)")
        then = Side("tasklets-db restore --tenant (tenant backup taken after the load)")
        for _ in range(bench.runs):
            _damage(url, tenant_id)
            plain.runs.append(run_measured([*restore, str(alone)], env=env))
            _damage(url, tenant_id)
            at.runs.append(run_measured([*restore, "--at", "latest"], env=env))
            _damage(url, tenant_id)
            then.runs.append(run_measured([*restore, str(after)], env=env))
    finally:
        bench.cli(url, "capture", "stop", "--drop-slot", **extra)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM tasks WHERE tenant_id = %s",
                            (tenant_id,)).fetchone()[0]
    per_tx = (at.median_seconds - plain.median_seconds) / args.pitr_transactions
    facts["replay_us_per_transaction"] = round(per_tx * 1e6, 1)
    facts["hour_of_load_estimate_s"] = round(plain.median_seconds + per_tx * tps * 3600, 1)
    case = Case(f"point-in-time restore --tenant --at latest ({args.pitr_transactions} "
                "transactions after "
                "the backup)", at, [plain, then], rows)
    case.target = "≤ 2 × the plain tenant restore"
    case.sizes = {"change segments": facts["segment_bytes"], "tenant backup":
                  alone.stat().st_size}
    print(format_case(case.summary()), flush=True)
    print(f"PITR load: {facts}", flush=True)
    return [case], facts


def _write_load(url: str, tenant_id: int, transactions: int, seed: int) -> float:
    """Run the write load; its rate (transactions per second)."""
    rng = random.Random(seed)
    with psycopg.connect(url, autocommit=True) as conn:
        tasks = {t: [r[0] for r in conn.execute(
            "SELECT id FROM tasks WHERE tenant_id = %s ORDER BY id", (t,))]
            for t in (tenant_id, OTHER_TENANT)}
        started = time.perf_counter()
        for number in range(transactions):
            tenant = tenant_id if rng.random() < SHARE else OTHER_TENANT
            task = rng.choice(tasks[tenant])
            with conn.transaction():
                conn.execute("UPDATE tasks SET title = left(title, 60) || %s, "
                             "updated_at = now() WHERE id = %s", (f" #{number}", task))
                conn.execute("INSERT INTO comments (tenant_id, task_id, body) "
                             "VALUES (%s, %s, %s)", (tenant, task, f"load {number}"))
                if number % 5 == 0:
                    conn.execute("DELETE FROM comments WHERE id = (SELECT min(id) FROM "
                                 "comments WHERE tenant_id = %s)", (tenant,))
        return transactions / (time.perf_counter() - started)


def _damage(url: str, tenant_id: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in DAMAGE:
            conn.execute(statement, {"t": tenant_id})
