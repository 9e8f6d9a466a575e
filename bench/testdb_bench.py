"""Test databases (case `testdb`): what a test waits for to get a fresh database holding the
sample data (lookups + sample at --testdb-scale, default 1: ~29,000 rows, ~24 MB).

Side by side, on that data, per test database:
- ours: a hand-out from the warm pool of a running `tasklets-db testdb serve`, over HTTP, with
  8 clients at once (each holds its database a moment, as a test would, then returns it);
- a clone made on demand (CREATE DATABASE ... TEMPLATE, FILE_COPY and WAL_LOG);
- per-test `push` + seed into an empty database (in process, no CLI start-up);
- per-test TRUNCATE of every table + seed (in process);
- `make db-fresh RUN=local` into an empty database (its sample has no volume data: less data,
  so the comparison favours it).
Plus the template build itself, once per hash: a second pool asks for the same hash and
builds nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg

from ops.core.config import PROJECT_ROOT, Settings
from ops.dev.cluster import free_port
from ops.restore.reset import reset
from ops.schema.migrate import push
from ops.seed.custom import run_seed
from ops.testdb.admin import open_admin
from ops.testdb.pool import Limits, Pool
from ops.testdb.recipe import Recipe

if TYPE_CHECKING:
    from bench.run import Bench

CLIENTS = 8
HOLD_SECONDS = 2.0  # how long each client keeps its database, as a short test would
VOLUME_SEED = '''"""The sample data with {scale} units of volume data."""
from ops.seed.builtin import seed_sample


def run(conn, report):
    seed_sample(conn, report, scale={scale})
'''


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def testdb_results(bench: Bench, args: argparse.Namespace) -> dict:
    seeds = bench.work / "testdb-seeds"
    seeds.mkdir()
    (seeds / "volume.py").write_text(VOLUME_SEED.format(scale=args.testdb_scale))
    settings = Settings(database_url=bench.server_url, backup_dir=bench.work / "backups",
                        app_env="test", seeds_dir=seeds)
    recipe = Recipe(("lookups", "volume"))
    rounds = max(3, args.runs * 3)
    out: dict = {"scale": args.testdb_scale, "clients": CLIENTS, "rounds": rounds}

    started = time.perf_counter()
    with Pool(open_admin(settings), Limits(ready=0)) as pool:
        template = pool.ensure(recipe)
    out["template_build_s"] = round(time.perf_counter() - started, 2)
    out["template_mb"] = round(template.size / 1e6, 1)
    started = time.perf_counter()
    with Pool(open_admin(settings), Limits(ready=0)) as again:
        second = again.ensure(recipe)
        out["second_run_built"] = second.built or again.counters.templates_built > 0
    out["second_run_ms"] = _ms(time.perf_counter() - started)
    print(f"✅ testdb: template built in {out['template_build_s']} s "
          f"({out['template_mb']} MB); second run built nothing: "
          f"{not out['second_run_built']}", flush=True)

    out["clone_ms"] = _clones(bench, template.name, rounds)
    out["handout"] = _handout(bench, settings, seeds, rounds)
    out["alternatives_ms"] = _alternatives(bench, settings, rounds)
    warm = out["handout"]["median_ms"]
    out["ratios"] = {name: round(warm / ms, 4) for name, ms in out["alternatives_ms"].items()}
    print(format_testdb(out), flush=True)
    return out


def _clones(bench: Bench, template: str, rounds: int) -> dict:
    timings: dict[str, list[float]] = {"file_copy": [], "wal_log": []}
    with psycopg.connect(bench.server_url, autocommit=True) as conn:
        for number in range(rounds):
            for strategy, found in timings.items():  # alternating, as every case here
                name = f"bench_clone_{strategy}_{number}"
                started = time.perf_counter()
                conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} "
                             f"STRATEGY {strategy.upper()}")
                found.append(_ms(time.perf_counter() - started))
                conn.execute(f"DROP DATABASE {name}")
    return {strategy: {"median_ms": statistics.median(found), "p95_ms": _p95(found)}
            for strategy, found in timings.items()}


def _handout(bench: Bench, settings: Settings, seeds: Path, rounds: int) -> dict:
    """8 clients against a running server, each: get, hold, put - `rounds` times."""
    port = free_port()
    env = bench.env(bench.server_url, TESTDB_DATABASE_URL=bench.server_url,
                    SEEDS_DIR=str(seeds))
    server = subprocess.Popen(
        [sys.executable, "-m", "ops", "testdb", "serve", "--port", str(port), "--seed",
         "lookups", "--seed", "volume", "--ready", str(CLIENTS * 2), "--max-databases",
         str(CLIENTS * 4)], env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, CLIENTS * 2)
        latencies: list[float] = []
        warm: list[float] = []  # hand-outs that found a clone ready
        lock = threading.Lock()
        errors: list[str] = []

        def client() -> None:
            with httpx.Client(base_url=base, timeout=120) as http:
                for _ in range(rounds):
                    started = time.perf_counter()
                    got = http.post("/databases", json={"wait": 120})
                    took = _ms(time.perf_counter() - started)
                    if got.status_code != 200:
                        errors.append(got.text)
                        return
                    with lock:
                        latencies.append(took)
                        if not got.json()["cold"]:
                            warm.append(took)
                    time.sleep(HOLD_SECONDS)
                    http.delete(f"/databases/{got.json()['name']}")

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"testdb hand-out failed: {errors[0]}")
        status = httpx.get(base + "/status").json()
    finally:
        server.terminate()
        server.wait(timeout=120)
    return {"median_ms": statistics.median(warm or latencies), "p95_ms": _p95(warm or latencies),
            "count": len(warm),
            "all": {"count": len(latencies), "median_ms": statistics.median(latencies),
                    "p95_ms": _p95(latencies)},
            "server_clone_median_ms": status["clone_ms"]["median"]}


def _wait_ready(base: str, server: subprocess.Popen, ready: int) -> None:
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"testdb serve stopped: {server.stderr.read()[-2000:]}")
        try:
            templates = httpx.get(base + "/status", timeout=2).json()["templates"]
            if templates and templates[0]["idle"] >= ready:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("testdb serve never filled its pool")


def _alternatives(bench: Bench, settings: Settings, rounds: int) -> dict:
    """Milliseconds per fresh database the other ways, medians of `rounds` (fewer for the
    slow ones: they take seconds each)."""
    slow_rounds = max(1, rounds // 3)
    found: dict[str, list[float]] = {"push + seed": [], "TRUNCATE + seed": [],
                                     "make db-fresh": []}
    reused = settings.with_url(bench.create_db("bench_testdb_truncate"))
    push(reused)
    for number in range(slow_rounds):
        target = settings.with_url(bench.create_db(f"bench_testdb_push_{number}"))
        started = time.perf_counter()
        push(target)
        for seed in ("lookups", "volume"):
            run_seed(target, seed)
        found["push + seed"].append(_ms(time.perf_counter() - started))

        started = time.perf_counter()
        reset(reused, confirm=True)
        for seed in ("lookups", "volume"):
            run_seed(reused, seed)
        found["TRUNCATE + seed"].append(_ms(time.perf_counter() - started))

        url = bench.create_db(f"bench_testdb_fresh_{number}")
        # not the outer make's own settings: `make bench ARGS=…` would hand its ARGS on
        env = {k: v for k, v in bench.env(url).items()
               if not k.startswith("MAKE") and k != "ARGS"}
        env.update(ENV_FILE=os.devnull)
        started = time.perf_counter()
        done = subprocess.run(["make", "--no-print-directory", "-s", "db-fresh", "RUN=local"],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        found["make db-fresh"].append(_ms(time.perf_counter() - started))
        if done.returncode != 0:
            raise RuntimeError(f"make db-fresh failed: {done.stderr[-2000:]}")
    return {name: statistics.median(values) for name, values in found.items()}


def format_testdb(out: dict) -> str:
    hand = out["handout"]
    lines = [
        f"🧪 testdb (scale {out['scale']}, {out['template_mb']} MB): hand-out from a warm pool, "
        f"{out['clients']} clients: median {hand['median_ms']} ms, p95 {hand['p95_ms']} ms "
        f"(target ≤ 50) over {hand['count']}; all {hand['all']['count']} hand-outs, cold ones "
        f"too (the pool refilling at {hand['server_clone_median_ms']} ms a clone): median "
        f"{hand['all']['median_ms']} ms, p95 {hand['all']['p95_ms']} ms",
        "   clone on demand: " + ", ".join(
            f"{strategy} median {t['median_ms']} ms (p95 {t['p95_ms']})"
            for strategy, t in out["clone_ms"].items()) + " (target ≤ 200)",
        f"   template build {out['template_build_s']} s once; a second run: "
        f"{'built again' if out['second_run_built'] else 'nothing built'} "
        f"({out['second_run_ms']} ms)",
    ]
    for name, ms in out["alternatives_ms"].items():
        lines.append(f"   per test, {name}: {ms:,.0f} ms — the warm hand-out is "
                     f"{out['ratios'][name]:.4f} of it")
    return "\n".join(lines)
