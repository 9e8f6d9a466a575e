"""The benchmark: tasklets-db against pg_dump/pg_restore/psql on the same data, in one run.

Every comparison alternates A/B for --runs rounds and reports medians, ratios to the pg tool,
peak RSS (our process and its whole tree), rows/s and file sizes; results also go to
bench/results/<timestamp>.json, with SVG charts beside it (bench/charts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from bench.charts import write_charts
from bench.measure import Measurement, run_measured
from ops.dev.cluster import find_bin_dir, start_throwaway

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLI = [sys.executable, "-m", "ops"]
# The key of the anonymized-backup case (any secret of 16+ characters; a benchmark's own).
BENCH_SALT = "bench-anonymize-salt-0123456789"
# pg_dump would also carry the tool's bookkeeping; our backup leaves these out by design.
PG_DUMP_EXCLUDES = ["--exclude-table=alembic_version", "--exclude-table=ops_metadata"]


@dataclass
class Side:
    label: str
    runs: list[Measurement] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def peak_rss_mb(self) -> float:
        return max(m.peak_rss_mb for m in self.runs)

    @property
    def tree_peak_rss_mb(self) -> float:
        return max(m.tree_peak_rss_mb for m in self.runs)


@dataclass
class Case:
    name: str
    ours: Side
    theirs: list[Side]
    rows: int
    sizes: dict[str, int] = field(default_factory=dict)
    target: str = ""

    def summary(self) -> dict:
        base = self.theirs[0].median_seconds if self.theirs else None
        return {
            "case": self.name,
            "rows": self.rows,
            "target": self.target,
            "ours": {"label": self.ours.label, "median_s": round(self.ours.median_seconds, 3),
                     "runs_s": [round(m.seconds, 3) for m in self.ours.runs],
                     "peak_rss_mb": round(self.ours.peak_rss_mb, 1),
                     "tree_peak_rss_mb": round(self.ours.tree_peak_rss_mb, 1),
                     "rows_per_s": round(self.rows / self.ours.median_seconds)
                     if self.rows else None},
            "theirs": [{"label": s.label, "median_s": round(s.median_seconds, 3),
                        "runs_s": [round(m.seconds, 3) for m in s.runs],
                        "peak_rss_mb": round(s.peak_rss_mb, 1),
                        "ratio": round(self.ours.median_seconds / s.median_seconds, 2)}
                       for s in self.theirs],
            "ratio": round(self.ours.median_seconds / base, 2) if base else None,
            "sizes_bytes": self.sizes,
        }


class Bench:
    def __init__(self, server_url: str, work: Path, runs: int) -> None:
        self.server_url = server_url
        self.work = work
        self.runs = runs
        self.bin = find_bin_dir()

    # -- databases -----------------------------------------------------------------------
    def url(self, db: str) -> str:
        base, _, _ = self.server_url.rpartition("/")
        return f"{base}/{db}"

    def admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(statement)

    def create_db(self, name: str, template: str | None = None) -> str:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self.admin(create)
        return self.url(name)

    def env(self, db_url: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DATABASE_"))}
        env.update({"DATABASE_URL": db_url, "BACKUP_DIR": str(self.work / "backups"),
                    "APP_ENV": "test", **extra})
        return env

    def cli(self, db_url: str, *args: str, **extra: str) -> None:
        result = subprocess.run([*CLI, *args], env=self.env(db_url, **extra),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"tasklets-db {' '.join(args)} failed: {result.stderr.strip()}")

    def pg(self, tool: str) -> str:
        return str(self.bin / tool)

    def truncate_all(self, db_url: str) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            names = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT IN ('alembic_version', 'ops_metadata')")]
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                sql.SQL(", ").join(sql.Identifier(n) for n in names)))

    def total_rows(self, db_url: str) -> int:
        with psycopg.connect(db_url) as conn:
            names = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT IN ('alembic_version', 'ops_metadata')")]
            return sum(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(n))).fetchone()[0] for n in names)

    # -- comparisons ---------------------------------------------------------------------
    def compare(self, name: str, rows: int, ours: tuple[str, list[str], dict],
                theirs: list[tuple[str, list[str], dict]],
                before: Callable[[], None] | None = None, stdin: dict[str, str] | None = None,
                before_ours: Callable[[], None] | None = None) -> Case:
        """Alternate ours and each of theirs for self.runs rounds (before() ahead of each,
        before_ours() ahead of each round)."""
        case = Case(name, Side(ours[0]), [Side(t[0]) for t in theirs], rows)
        stdin = stdin or {}
        for _ in range(self.runs):
            if before_ours:
                before_ours()
            for side, (label, cmd, env) in zip([case.ours, *case.theirs], [ours, *theirs],
                                                strict=True):
                if before:
                    before()
                side.runs.append(run_measured(cmd, env=env, stdin=stdin.get(label)))
        print(format_case(case.summary()), flush=True)
        return case


def format_case(s: dict) -> str:
    ours = s["ours"]
    lines = [f"{s['case']}: {ours['label']} {ours['median_s']:.2f}s "
             f"(RSS {ours['peak_rss_mb']:.0f} MB, tree {ours['tree_peak_rss_mb']:.0f} MB"
             + (f", {ours['rows_per_s']:,} rows/s" if ours['rows_per_s'] else "") + ")"]
    for t in s["theirs"]:
        lines.append(f"    vs {t['label']} {t['median_s']:.2f}s (RSS {t['peak_rss_mb']:.0f} MB)"
                     f" → ratio {t['ratio']:.2f}")
    if s.get("target"):
        lines.append(f"    target: {s['target']}")
    return "\n".join(lines)


def build_dataset(bench: Bench, name: str, scale: float, seed: int) -> tuple[str, int, float]:
    url = bench.create_db(name)
    bench.cli(url, "push")
    bench.cli(url, "seed", "lookups")
    started = datetime.now()
    bench.cli(url, "seed", "sample", "--scale", str(scale), "--random-seed", str(seed))
    seconds = (datetime.now() - started).total_seconds()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url, bench.total_rows(url), seconds


def naive_cmd(url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.naive", url, str(out)]


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tasklets-bench-"))
    os.chmod(work, 0o755)
    cluster = None
    server = os.environ.get("BENCH_DATABASE_URL")
    if not server:
        cluster = start_throwaway(work / "pg")
        server = cluster.url
    try:
        return _run(Bench(server, work, args.runs), args)
    finally:
        if cluster:
            cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)


def _run(bench: Bench, args: argparse.Namespace) -> dict:
    files = bench.work / "files"
    files.mkdir()
    (bench.work / "backups").mkdir()
    print(f"⏳ Building dataset: seed sample --scale {args.scale} ...", flush=True)
    src, rows, gen_seconds = build_dataset(bench, "bench_src", args.scale, args.random_seed)
    print(f"✅ {rows:,} rows in {gen_seconds:.1f}s", flush=True)
    dst = bench.create_db("bench_dst")
    bench.cli(dst, "push")
    env_src, env_dst = bench.env(src), bench.env(dst)
    cases: list[Case] = []
    wanted = set(args.cases.split(","))

    if "backup" in wanted:
        cases += backup_cases(bench, rows, env_src, src, files)
    if "restore" in wanted:
        cases += restore_cases(bench, rows, dst, env_dst, files)
    if "anonymize" in wanted:
        cases.append(anonymize_case(bench, rows, src, files))
    if "reset" in wanted:
        cases.append(reset_case(bench, rows, src))
    if "beads" in wanted:
        cases += beads_cases(bench, args)
    if "storage" in wanted:
        from bench.storage_bench import storage_cases

        cases += storage_cases(bench, rows, src, dst)
    writes: dict = {}
    if "tenant" in wanted:
        found, writes = tenant_cases(bench, args)
        cases += found
    pitr: dict = {}
    if "pitr" in wanted:
        from bench.pitr_bench import pitr_cases

        found, pitr = pitr_cases(bench, args)
        cases += found
    capture: dict = {}
    if "capture" in wanted:
        from bench.capture_bench import capture_results

        capture = capture_results(bench, args)
    testdb: dict = {}
    if "testdb" in wanted:
        from bench.testdb_bench import testdb_results

        testdb = testdb_results(bench, args)
    rss: dict = {}
    if "baseline" in wanted:
        rss = rss_flatness(bench, args)
        cases.append(naive_case(bench, args, files))

    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "dataset": {"scale": args.scale, "rows": rows, "generate_seconds": round(gen_seconds, 1),
                    "table_bytes": _table_bytes(src)},
        "runs": args.runs,
        "cases": [c.summary() for c in cases],
        "rss_flatness": rss,
        "other_tenant_writes": writes,
        "pitr_load": pitr,
        "capture": capture,
        "testdb": testdb,
    }


def backup_cases(bench: Bench, rows: int, env_src: dict, src: str, files: Path) -> list[Case]:
    """Our backup against pg_dump as an expert runs it for the same job: plain SQL (-Fp, the
    target's baseline), the custom archive (-Fc) and the directory format over two jobs
    (-Fd -j 2, the fastest); all read one consistent snapshot, as ours does. Compressed: zstd
    (what --compress writes), and gzip (the format older versions wrote) for reference."""
    ours_json, ours_zst = files / "ours.json", files / "ours.json.zst"
    ours_gz = files / "ours.json.gz"
    dump_sql, dump_fc, dump_dir = files / "dump.sql", files / "dump.fc", files / "dump.dir"
    pg_dump = [bench.pg("pg_dump"), "--data-only", *PG_DUMP_EXCLUDES]
    fp = ("pg_dump --data-only -Fp", [*pg_dump, "-Fp", "-f", str(dump_sql), src], env_src)
    fc = ("pg_dump --data-only -Fc", [*pg_dump, "-Fc", "-f", str(dump_fc), src], env_src)
    fd = ("pg_dump --data-only -Fd -j 2",
          [*pg_dump, "-Fd", "-j", "2", "-f", str(dump_dir), src], env_src)
    cases = []
    case = bench.compare(
        "backup", rows,
        ("tasklets-db backup", [*CLI, "backup", "--output", str(ours_json)], env_src),
        [fp, fc, fd], before_ours=_removing(ours_json, dump_dir))
    case.sizes = {"ours": ours_json.stat().st_size, "pg_dump -Fp": dump_sql.stat().st_size,
                  "pg_dump -Fc": dump_fc.stat().st_size, "pg_dump -Fd": _tree_size(dump_dir)}
    case.target = "≤ 2.0 × pg_dump -Fp"
    cases.append(case)

    case = bench.compare(
        "backup --compress", rows,
        ("tasklets-db backup --compress",
         [*CLI, "backup", "--compress", "--output", str(ours_zst)], env_src),
        [fc, fd], before_ours=_removing(ours_zst, dump_dir))
    case.sizes = {"ours": ours_zst.stat().st_size, "pg_dump -Fc": dump_fc.stat().st_size,
                  "pg_dump -Fd": _tree_size(dump_dir)}
    case.target = "≤ 0.75 × pg_dump -Fc, and no larger"
    cases.append(case)

    case = bench.compare(
        "backup --compression gzip", rows,
        ("tasklets-db backup --compression gzip",
         [*CLI, "backup", "--compression", "gzip", "--output", str(ours_gz)], env_src),
        [fc], before_ours=_removing(ours_gz))
    case.sizes = {"ours": ours_gz.stat().st_size, "ours (zstd)": ours_zst.stat().st_size,
                  "pg_dump -Fc": dump_fc.stat().st_size}
    cases.append(case)
    return cases


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _removing(*paths: Path) -> Callable[[], None]:
    """Deletes the previous round's output: backup --output never overwrites a file, nor
    pg_dump -Fd a directory."""
    def remove() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    return remove


def anonymize_case(bench: Bench, rows: int, src: str, files: Path) -> Case:
    """backup --anonymize against a plain backup of the same data (the same --jobs)."""
    anonymized, plain = files / "anonymized.json", files / "plain.json"
    env = bench.env(src, ANONYMIZE_SALT=BENCH_SALT)
    case = bench.compare(
        "backup --anonymize", rows,
        ("tasklets-db backup --anonymize",
         [*CLI, "backup", "--anonymize", "--output", str(anonymized)], env),
        [("tasklets-db backup", [*CLI, "backup", "--output", str(plain)], env)],
        before_ours=_removing(anonymized, plain))
    case.sizes = {"anonymized": anonymized.stat().st_size, "plain": plain.stat().st_size}
    case.target = "≤ 1.5 × tasklets-db backup"
    return case


def restore_cases(bench: Bench, rows: int, dst: str, env_dst: dict, files: Path) -> list[Case]:
    ours_json, ours_zst = files / "ours.json", files / "ours.json.zst"
    dump_sql, dump_fc = files / "dump.sql", files / "dump.fc"
    cases = []

    def empty_dst() -> None:
        bench.truncate_all(dst)

    # The first is the target's baseline: the strongest atomic equivalent, a superuser's
    # restore without foreign-key triggers (ours also runs as superuser here, and then
    # validates every key itself). The rest for reference: what a table owner gets (every row
    # checked by the FK triggers), the fastest (two jobs, not atomic), and the plain dump.
    pg_restore = [bench.pg("pg_restore"), "--data-only", "-d", dst, str(dump_fc)]
    theirs = [
        ("pg_restore --data-only --single-transaction --disable-triggers",
         [*pg_restore, "--single-transaction", "--disable-triggers"], env_dst),
        ("pg_restore --data-only --single-transaction",
         [*pg_restore, "--single-transaction"], env_dst),
        ("pg_restore --data-only -j 2 --disable-triggers (not atomic)",
         [*pg_restore, "-j", "2", "--disable-triggers"], env_dst),
        ("psql -1 -f (plain dump)",
         [bench.pg("psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dst, "-f",
          str(dump_sql)], env_dst),
    ]
    # The compressed case against the target's baseline only: the others, slow and already
    # shown beside the plain case, would add ten minutes at scale 70 and nothing new.
    for label, path, against in (("restore", ours_json, theirs),
                                 ("restore (compressed)", ours_zst, theirs[:1])):
        case = bench.compare(
            label, rows,
            (f"tasklets-db {label}",
             [*CLI, "restore", str(path), "--no-safety-backup"], env_dst),
            against, before=empty_dst)
        case.target = "≤ 1.0 × pg_restore --single-transaction --disable-triggers"
        cases.append(case)
    return cases


def reset_case(bench: Bench, rows: int, src: str) -> Case:
    def full_copy() -> None:
        bench.create_db("bench_reset", template="bench_src")

    reset_url = bench.url("bench_reset")
    env_reset = bench.env(reset_url)
    truncate = "TRUNCATE " + ", ".join(_app_tables(src)) + " RESTART IDENTITY"
    case = bench.compare(
        "reset", rows,
        ("tasklets-db reset --confirm", [*CLI, "reset", "--confirm"], env_reset),
        [("psql -c TRUNCATE", [bench.pg("psql"), "-X", "-q", "-d", reset_url, "-c", truncate],
          env_reset)], before=full_copy)
    case.target = "< 1 s"
    return case


def naive_case(bench: Bench, args: argparse.Namespace, files: Path) -> Case:
    """Our backup against the seed tool's approach, at the smaller --large-scale dataset."""
    small_src = bench.url("bench_rss_large")
    naive_json = files / "naive.json"
    small_rows = bench.total_rows(small_src)
    case = bench.compare(
        f"naive select-all + json.dumps (scale {args.large_scale})", small_rows,
        ("tasklets-db backup", [*CLI, "backup", "--output", str(files / "small.json")],
         bench.env(small_src)),
        [("naive (SELECT *, all in memory, json.dumps)", naive_cmd(small_src, naive_json),
          bench.env(small_src))], before_ours=_removing(files / "small.json", naive_json))
    return case


def beads_cases(bench: Bench, args: argparse.Namespace) -> list[Case]:
    """10,000 generated beads issues, imported directly and through the API."""
    from bench.beads_bench import beads_cases as cases_for

    return cases_for(bench, args)


def tenant_cases(bench: Bench, args: argparse.Namespace) -> tuple[list[Case], dict]:
    """One tenant of about 10% of the rows restored alone, against a full restore."""
    from bench.tenant_bench import tenant_cases as cases_for

    return cases_for(bench, args)


def rss_flatness(bench: Bench, args: argparse.Namespace) -> dict:
    out: dict[str, dict] = {}
    for label, scale in (("small", args.small_scale), ("large", args.large_scale)):
        url, rows, _ = build_dataset(bench, f"bench_rss_{label}", scale, args.random_seed)
        path = bench.work / "files" / f"rss-{label}.json"
        b = run_measured([*CLI, "backup", "--output", str(path)], env=bench.env(url))
        target = bench.create_db(f"bench_rss_{label}_dst")
        bench.cli(target, "push")
        r = run_measured([*CLI, "restore", str(path), "--no-safety-backup"],
                         env=bench.env(target))
        out[label] = {"scale": scale, "rows": rows, "file_bytes": path.stat().st_size,
                      "backup_peak_rss_mb": round(b.peak_rss_mb, 1),
                      "restore_peak_rss_mb": round(r.peak_rss_mb, 1)}
    for key in ("backup_peak_rss_mb", "restore_peak_rss_mb"):
        small, large = out["small"][key], out["large"][key]
        out[f"{key}_large_over_small"] = round(large / small, 2)
    print(f"RSS flatness: {json.dumps(out)}", flush=True)
    return out


def _app_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [sql.Identifier(r[0]).as_string(conn) for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'ops_metadata') ORDER BY 1")]


def _table_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        size = conn.execute(
            "SELECT sum(pg_table_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()[0] or 0
    return int(size)


def machine() -> dict:
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    return {"cpus": os.cpu_count(), "memory_gb": round(int(mem) / 1024 / 1024, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "cpu": _cpu_model()}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=70,
                        help="seed sample --scale for the main dataset (default 70 ≈ 2 M rows)")
    parser.add_argument("--runs", type=int, default=3, help="A/B rounds per comparison")
    parser.add_argument("--small-scale", type=float, default=1,
                        help="scale of the small dataset in the peak-RSS comparison")
    parser.add_argument("--large-scale", type=float, default=10,
                        help="scale of the large dataset in the peak-RSS comparison, and of "
                             "the naive baseline")
    parser.add_argument("--beads-issues", type=int, default=10_000,
                        help="generated beads issues to import (direct and via the API)")
    parser.add_argument("--testdb-scale", type=float, default=1,
                        help="volume data in the test databases' template (default 1 ≈ 29 k "
                             "rows, 24 MB)")
    parser.add_argument("--random-seed", type=int, default=42,
                        help="seed of the generated data (same seed, same rows)")
    parser.add_argument("--pitr-transactions", type=int, default=20_000,
                        help="write-load transactions after the tenant's backup in the "
                        "point-in-time case")
    parser.add_argument("--capture-seconds", type=float, default=20,
                        help="seconds of write load per round of the capture case (alone, "
                        "then with capture running)")
    parser.add_argument("--capture-flush-every", default="5s",
                        help="capture's --flush-every in the capture case")
    parser.add_argument("--cases", default="backup,restore,anonymize,reset,beads,storage,tenant,"
                        "pitr,capture,testdb,baseline",
                        help="comma-separated subset (restore needs backup's files)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the results JSON goes (default bench/results)")
    args = parser.parse_args(argv)
    results = run(args)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{results['timestamp'].replace(':', '-')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"📁 Results: {out}")
    print(f"📈 Charts: {', '.join(str(chart) for chart in write_charts(results, out))}")
