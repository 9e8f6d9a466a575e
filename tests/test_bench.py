"""`make bench` end to end at a tiny scale: every comparison runs and lands in the results file.

The figures at this scale mean nothing (start-up dominates); the test proves the benchmark
itself works, so the README's numbers can always be re-run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ops.core.config import PROJECT_ROOT

RESTORE_BASELINES = ["pg_restore --data-only --single-transaction --disable-triggers",
                     "pg_restore --data-only --single-transaction",
                     "pg_restore --data-only -j 2 --disable-triggers (not atomic)",
                     "psql -1 -f (plain dump)"]
# Each case's baselines, the strongest atomic equivalent (what its ratio is against) first.
PG_TOOLS = {
    "backup": ["pg_dump --data-only -Fp", "pg_dump --data-only -Fc",
               "pg_dump --data-only -Fd -j 2"],
    "backup --compress": ["pg_dump --data-only -Fc", "pg_dump --data-only -Fd -j 2"],
    "backup --compression gzip": ["pg_dump --data-only -Fc"],
    "restore": RESTORE_BASELINES,
    "restore (compressed)": RESTORE_BASELINES[:1],
    "reset": ["psql -c TRUNCATE"],
    "backup --anonymize": ["tasklets-db backup"],
}


def test_bench_runs_every_comparison_and_writes_the_results_file(tmp_path: Path, cli_env):
    env = {k: v for k, v in cli_env.items() if k != "BENCH_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.03", "--runs", "1", "--small-scale", "0.03",
         "--large-scale", "0.06", "--beads-issues", "20", "--testdb-scale", "0.03",
         "--results-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    [results_file] = tmp_path.glob("*.json")
    results = json.loads(results_file.read_text())
    assert f"📁 Results: {results_file}" in done.stdout
    cases = {case["case"]: case for case in results["cases"]}
    for name, tools in PG_TOOLS.items():
        case = cases[name]
        assert case["rows"] > 500 and case["ours"]["median_s"] > 0
        assert [side["label"] for side in case["theirs"]] == tools
        assert case["ratio"] == case["theirs"][0]["ratio"] > 0  # against the first pg tool
        assert case["ours"]["peak_rss_mb"] > 10
    assert cases["backup"]["sizes_bytes"]["ours"] > 0
    assert cases["backup --compress"]["sizes_bytes"]["pg_dump -Fd"] > 0
    assert cases["backup --anonymize"]["sizes_bytes"]["anonymized"] > 0
    assert cases["import beads (20 issues, direct)"]["rows"] == 20
    assert cases["import beads (20 issues, via API)"]["rows"] == 20
    assert any(name.startswith("naive select-all") for name in cases)
    for name in ("backup to S3 (moto, loopback)", "restore from S3 (moto, loopback)",
                 "backup --compress, age-encrypted"):
        assert cases[name]["ratio"] > 0, name
    tenant = [case for name, case in cases.items() if name.startswith("restore --tenant")]
    assert len(tenant) == 3
    for case in tenant:  # each against the full restore
        assert case["rows"] > 50 and case["ratio"] > 0
        assert [side["label"] for side in case["theirs"]] == ["tasklets-db restore (every tenant)"]
    writes = results["other_tenant_writes"]
    # another tenant's writes never wait for the tenant restore's locks
    assert writes["restore --tenant"]["waited"] == writes["restore --tenant"][
        "lock_waits_seen"] == 0
    testdb = results["testdb"]
    assert testdb["handout"]["all"]["count"] == 8 * testdb["rounds"]
    assert testdb["second_run_built"] is False  # once per hash
    assert testdb["clone_ms"]["file_copy"]["median_ms"] > 0
    assert set(testdb["ratios"]) == {"push + seed", "TRUNCATE + seed", "make db-fresh"}
    assert all(ratio > 0 for ratio in testdb["ratios"].values())
    flat = results["rss_flatness"]
    assert flat["large"]["rows"] > flat["small"]["rows"] > 0
    assert flat["backup_peak_rss_mb_large_over_small"] > 0
