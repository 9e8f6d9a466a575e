"""`make bench` end to end at a tiny scale: every comparison runs and lands in the results file.

The figures at this scale mean nothing (start-up dominates); the test proves the benchmark
itself works, so the numbers in docs/explanation/benchmarks.md can always be re-run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
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
    earlier = tmp_path / "2026-12-01T10-52-00+00-00.json"  # a previous run at another scale
    earlier.write_text(json.dumps(EARLIER_RUN))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.03", "--runs", "1", "--small-scale", "0.03",
         "--large-scale", "0.06", "--beads-issues", "20", "--testdb-scale", "0.03",
         "--pitr-transactions", "30", "--capture-seconds", "2",
         "--results-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    [results_file] = set(tmp_path.glob("*.json")) - {earlier}
    results = json.loads(results_file.read_text())
    assert f"📁 Results: {results_file}" in done.stdout
    assert_charts(results_file, results, done.stdout)
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
    [pitr] = [case for name, case in cases.items() if name.startswith("point-in-time")]
    assert pitr["ratio"] > 0 and pitr["sizes_bytes"]["change segments"] > 0
    assert results["pitr_load"]["transactions"] == 30 and results["pitr_load"]["segments"] >= 1
    writes = results["other_tenant_writes"]
    # another tenant's writes never wait for the tenant restore's locks
    assert writes["restore --tenant"]["waited"] == writes["restore --tenant"][
        "lock_waits_seen"] == 0
    capture = results["capture"]
    assert capture["tps_with_capture"] > 0 and capture["throughput_ratio"] > 0
    assert capture["lag_samples"] > 0 and capture["segment_bytes"] > 0
    assert 10 < capture["rss_peak_mb"] < 1000
    testdb = results["testdb"]
    assert testdb["handout"]["all"]["count"] == 8 * testdb["rounds"]
    assert testdb["second_run_built"] is False  # once per hash
    assert testdb["clone_ms"]["file_copy"]["median_ms"] > 0
    assert set(testdb["ratios"]) == {"push + seed", "TRUNCATE + seed", "make db-fresh"}
    assert all(ratio > 0 for ratio in testdb["ratios"].values())
    flat = results["rss_flatness"]
    assert flat["large"]["rows"] > flat["small"]["rows"] > 0
    assert flat["backup_peak_rss_mb_large_over_small"] > 0


SVG = "{http://www.w3.org/2000/svg}"
EARLIER_RUN = {
    "timestamp": "2026-12-01T10:52:00+00:00", "runs": 3,
    "dataset": {"scale": 70, "rows": 2032668},
    "cases": [{"case": "backup", "ours": {"label": "tasklets-db backup", "median_s": 8.01},
               "theirs": [{"label": "pg_dump --data-only -Fp", "median_s": 2.93,
                           "ratio": 2.73}], "ratio": 2.73}],
}


def bars(svg: Path) -> list[dict[str, str]]:
    """Every bar of a chart (valid XML, or this raises), with its figures."""
    return [bar.attrib for bar in ET.parse(svg).getroot().iter(f"{SVG}rect")
            if bar.get("class") == "bar"]


def assert_charts(results_file: Path, results: dict, output: str) -> None:
    """This run's chart has ours and every PostgreSQL tool's median per case; the ratios
    chart has each case's ratio at this run's scale and at the earlier run's."""
    run_chart, ratios = results_file.with_suffix(".svg"), results_file.parent / "ratios.svg"
    assert f"📈 Charts: {run_chart}, {ratios}" in output
    drawn = {(b["data-group"], b["data-label"]): float(b["data-value"]) for b in bars(run_chart)}
    tools = {"pg_dump", "pg_restore", "psql"}
    against_pg = [c for c in results["cases"]
                  if c["theirs"] and c["theirs"][0]["label"].split()[0] in tools]
    assert {"backup", "restore", "reset"} <= {c["case"] for c in against_pg}
    assert len(drawn) == sum(1 + len(c["theirs"]) for c in against_pg)
    for case in against_pg:
        for side in (case["ours"], *case["theirs"]):
            assert drawn[case["case"], side["label"]] == side["median_s"]
    assert not any(group.startswith("restore --tenant") for group, _ in drawn)

    scale = results["dataset"]["scale"]
    by_scale = {(b["data-group"].split(", against ")[0], b["data-label"].split(" (")[0]):
                float(b["data-value"]) for b in bars(ratios)}
    for case in against_pg:
        assert by_scale[case["case"], f"scale {scale}"] == case["ratio"]
    assert by_scale["backup", "scale 70"] == 2.73
