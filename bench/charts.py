"""The charts `make bench` writes beside its results, for the docs to show:

- `<timestamp>.svg`: this run, case by case, our median time against each PostgreSQL tool's;
- `ratios.svg`: each case's ratio to its strongest PostgreSQL equivalent at every scale the
  results directory holds a run of (the newest run at each scale).

Only cases measured against a PostgreSQL tool (pg_dump, pg_restore, psql) are drawn; the
others compare us with ourselves (a tenant restore against a full one, S3 against disk).
"""

from __future__ import annotations

import json
from pathlib import Path

from ops.core.charts import Bar, BarGroup, bar_chart

PG_TOOLS = ("pg_dump", "pg_restore", "psql")
TITLE = "make bench: tasklets-db against the PostgreSQL tools"


def pg_cases(results: dict) -> list[dict]:
    return [case for case in results["cases"]
            if case["theirs"] and case["theirs"][0]["label"].startswith(PG_TOOLS)]


def run_chart(results: dict) -> str:
    groups = [BarGroup(case["case"], [
        Bar(case["ours"]["label"], case["ours"]["median_s"]),
        *(Bar(side["label"], side["median_s"], series=1) for side in case["theirs"])])
        for case in pg_cases(results)]
    return bar_chart(TITLE, groups, legend=["tasklets-db", "PostgreSQL tools"],
                     fmt=_seconds, subtitle=f"{_dataset(results)}; median seconds of "
                     f"{results['runs']} run(s), {results['timestamp']}")


def ratio_chart(runs: list[dict]) -> str:
    newest: dict[float, dict] = {}
    for results in sorted(runs, key=lambda r: r["timestamp"]):
        newest[results["dataset"]["scale"]] = results
    scales = sorted(newest)
    cases: dict[str, list[Bar]] = {}
    against: dict[str, str] = {}  # each case's baseline, as the newest run names it
    for index, scale in enumerate(scales):
        for case in pg_cases(newest[scale]):
            ours, theirs = case["ours"]["median_s"], case["theirs"][0]
            against[case["case"]] = theirs["label"]
            cases.setdefault(case["case"], []).append(Bar(
                _dataset(newest[scale]), case["ratio"], series=index,
                note=f"{case['ratio']:.2f}× ({ours:.2f} s vs {theirs['median_s']:.2f} s)"))
    return bar_chart(TITLE + ": ratios by scale",
                     [BarGroup(f"{name}, against {against[name]}", bars)
                      for name, bars in cases.items()],
                     legend=[f"scale {scale}" for scale in scales], fmt=lambda v: f"{v:.2f}×",
                     subtitle="our median time over the strongest atomic PostgreSQL "
                              "equivalent's; below 1 is faster",
                     reference=(1.0, "1 = as fast as the PostgreSQL tool"))


def write_charts(results: dict, results_file: Path) -> list[Path]:
    """Write this run's chart beside its results file, and the ratios over every run in
    that directory; returns both paths."""
    this_run = results_file.with_suffix(".svg")
    this_run.write_text(run_chart(results))
    runs = [results]
    for other in results_file.parent.glob("*.json"):
        if other != results_file:
            try:
                runs.append(json.loads(other.read_text()))
            except (OSError, ValueError):
                continue  # not a results file of ours
    ratios = results_file.parent / "ratios.svg"
    ratios.write_text(ratio_chart([r for r in runs if _is_results(r)]))
    return [this_run, ratios]


def _is_results(found: object) -> bool:
    return isinstance(found, dict) and {"timestamp", "dataset", "cases"} <= set(found)


def _dataset(results: dict) -> str:
    dataset = results["dataset"]
    return f"scale {dataset['scale']} ({dataset['rows']:,} rows)"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"
