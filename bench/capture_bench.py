"""Change capture under a steady write load: the recovery point (capture lag, p95), the load's
throughput with capture running against the same load without it, segment bytes per hour of
that load, and capture's memory over the run (peak and flatness).

Rounds alternate: the load alone, then the load while `tasklets-db capture` (a segment every
--capture-flush-every, default 5 s as the service's) runs as its own process, started and caught
up with what the slot kept meanwhile before the load begins; the lag is read from its metrics
endpoint every half second (one request per sample), its RSS from /proc. Rounds run ABBA.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from ops.dev.cluster import free_port

if TYPE_CHECKING:
    from bench.run import Bench

WRITERS = 4
SAMPLE_SECONDS = 0.5
SLOT = "bench_capture"


def capture_results(bench: Bench, args: argparse.Namespace) -> dict:
    from bench.run import CLI

    url = bench.create_db("bench_capture", template="bench_src")
    store = bench.work / "capture-store"
    store.mkdir()
    extra = {"BACKUP_DIR": str(store), "CAPTURE_SLOT": SLOT}
    bench.cli(url, "capture", "--once", **extra)  # the slot, the publication, the base backup
    alone: list[float] = []
    captured: list[float] = []
    lags: list[float] = []
    rss: list[float] = []
    others: dict[str, list[float]] = {"tasklets_capture_cycle_seconds": [],
                                      "tasklets_capture_retained_wal_bytes": []}
    seconds = args.capture_seconds
    def with_capture(seed: int) -> float:
        port = free_port()
        process = subprocess.Popen(
            [*CLI, "capture", "--metrics-port", str(port), "--flush-every",
             args.capture_flush_every], env=bench.env(url, **extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for_metrics(port, process)
            # the slot kept the load alone's changes: store them before measuring a steady
            # load, or the round measures catching up instead
            _wait_caught_up(port)
            stop = threading.Event()
            sampler = threading.Thread(target=_sample, args=(port, process.pid, stop, lags,
                                                             rss, others), daemon=True)
            sampler.start()
            rate = _load(url, seconds, seed)
            _wait_caught_up(port)  # what the load wrote is stored before the next round
            stop.set()
            sampler.join()
            return rate
        finally:
            process.terminate()
            process.wait(timeout=60)

    try:
        for round_number in range(bench.runs):
            # ABBA: the tables grow and age over the rounds; the side that always ran second
            # would always meet the slower database
            seed = args.random_seed + round_number
            if round_number % 2 == 0:
                alone.append(_load(url, seconds, seed))
                captured.append(with_capture(seed))
            else:
                captured.append(with_capture(seed))
                alone.append(_load(url, seconds, seed))
    finally:
        bench.cli(url, "capture", "stop", "--drop-slot", **extra)
    segment_bytes = sum(p.stat().st_size for p in store.glob("changes-*"))
    loaded = seconds * bench.runs
    ratio = statistics.median(captured) / statistics.median(alone)
    p95 = statistics.quantiles(lags, n=20)[-1] if len(lags) >= 20 else max(lags, default=0)
    quarter = max(1, len(rss) // 4)
    result = {
        "writers": WRITERS, "load_seconds_per_round": seconds, "rounds": bench.runs,
        "flush_every": args.capture_flush_every,
        "tps_without_capture": round(statistics.median(alone)),
        "tps_with_capture": round(statistics.median(captured)),
        "throughput_ratio": round(ratio, 3), "throughput_target": "≥ 0.9",
        "lag_p95_seconds": round(p95, 2), "lag_max_seconds": round(max(lags, default=0), 2),
        "lag_target": "≤ 5 s (p95)", "lag_samples": len(lags),
        "cycle_seconds_max": round(max(others["tasklets_capture_cycle_seconds"], default=0), 2),
        "retained_wal_mb_max": round(max(others["tasklets_capture_retained_wal_bytes"],
                                         default=0) / 2**20, 1),
        "segment_bytes": segment_bytes,
        "segment_bytes_per_hour": round(segment_bytes / loaded * 3600),
        "rss_peak_mb": round(max(rss, default=0), 1),
        "rss_first_quarter_mb": round(max(rss[:quarter], default=0), 1),
        "rss_last_quarter_mb": round(max(rss[-quarter:], default=0), 1),
        "rss_target": "≤ 150 MB, flat",
    }
    print(f"📼 capture: {result}", flush=True)
    return result


def _load(url: str, seconds: float, seed: int) -> float:
    """WRITERS connections writing for `seconds`: each transaction edits a task and adds a
    comment (every fifth deletes one); the rate in transactions per second."""
    with psycopg.connect(url) as conn:
        tasks = [r[0] for r in conn.execute("SELECT id, tenant_id FROM tasks ORDER BY id "
                                            "LIMIT 20000")]
        tenants = dict(conn.execute("SELECT id, tenant_id FROM tasks WHERE id = ANY(%s)",
                                    (tasks,)).fetchall())
    counts = [0] * WRITERS
    deadline = time.monotonic() + seconds

    def write(number: int) -> None:
        rng = random.Random(seed * 100 + number)
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                task = rng.choice(tasks)
                with conn.transaction():
                    conn.execute("UPDATE tasks SET title = left(title, 60) || %s, "
                                 "updated_at = now() WHERE id = %s", (f" #{counts[number]}",
                                                                      task))
                    conn.execute("INSERT INTO comments (tenant_id, task_id, body) "
                                 "VALUES (%s, %s, %s)", (tenants[task], task, "load"))
                    if counts[number] % 5 == 0:
                        conn.execute("DELETE FROM comments WHERE id = (SELECT min(id) FROM "
                                     "comments WHERE body = 'load')")
                counts[number] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def _metrics(port: int) -> dict[str, float]:
    """Every sample of the capture's metrics page, by name (one request: the sampler shares
    the load's process, and each request costs both processes CPU)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        found = {}
        for line in response.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                found[name] = float(value.split()[0])
        return found


def _metric(port: int, name: str) -> float | None:
    return _metrics(port).get(name)


def _wait_for_metrics(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"capture exited: {process.stderr.read().decode()[-500:]}"
                               if process.stderr else "capture exited")
        try:
            if _metric(port, "tasklets_capture_lag_seconds") is not None:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("capture's metrics did not answer within 20 s")


def _wait_caught_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (_metric(port, "tasklets_capture_lag_seconds") or 0) < 1:
            return
        time.sleep(SAMPLE_SECONDS)
    raise RuntimeError("capture did not catch up within 60 s of the load's end")


def _sample(port: int, pid: int, stop: threading.Event, lags: list[float],
            rss: list[float], others: dict[str, list[float]]) -> None:
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        try:
            found = _metrics(port)
            lag = found.get("tasklets_capture_lag_seconds")
            if lag is not None and lag == lag:  # NaN before the first cycle
                lags.append(lag)
            for name, seen in others.items():
                value = found.get(name)
                if value is not None and value == value:
                    seen.append(value)
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
        stop.wait(SAMPLE_SECONDS)
