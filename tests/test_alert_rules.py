"""The alert rules of deploy/prometheus/ under promtool, in the harness's Prometheus image
(PROMETHEUS_IMAGE, promtool on its PATH): the rules and the compose Prometheus's config are
valid, every rule has unit tests (alerts.test.yml) with series that fire and series that do
not, and those tests catch a broken rule: each number in a rule's expression and each `for`
doubled or halved, and each comparison turned round, makes them fail.

Skipped with the reason when no Docker engine answers, unless TASKLETS_REQUIRE_DOCKER=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.docker import why_no_docker

from ops.core.config import PROJECT_ROOT

pytestmark = pytest.mark.docker

RULES_DIR = PROJECT_ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
# The default age's test apart: 26 hours of evaluations every minute would take seconds.
UNIT_TESTS = [RULES_DIR / "alerts.test.yml", RULES_DIR / "alerts.default-age.test.yml"]
TIMEOUT = 300


@pytest.fixture(scope="module")
def image() -> str:
    reason = why_no_docker()
    if reason:
        if os.environ.get("TASKLETS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"TASKLETS_REQUIRE_DOCKER=1 but {reason}", pytrace=False)
        pytest.skip(f"promtool runs in the Prometheus image: {reason}")
    return os.environ.get("PROMETHEUS_IMAGE") or "prom/prometheus"


def in_image(image: str, folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` in the image with `folder` mounted read-only at /work."""
    return subprocess.run(["docker", "run", "--rm", "-v", f"{folder}:/work:ro",
                           "--entrypoint", command[0], image, *command[1:]],
                          capture_output=True, text=True, timeout=TIMEOUT)


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_the_rules_and_the_prometheus_config_are_valid(image: str):
    checked = in_image(image, RULES_DIR, "promtool", "check", "config", "/work/prometheus.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout  # alerts.yml was loaded


def test_every_rule_has_series_that_fire_and_series_that_do_not_and_they_pass(image: str):
    cases = [case for path in UNIT_TESTS for test in yaml.safe_load(path.read_text())["tests"]
             for case in test["alert_rule_test"]]
    for rule in alerts():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} always fires"

    tested = in_image(image, RULES_DIR, "promtool", "test", "rules",
                      *(f"/work/{path.name}" for path in UNIT_TESTS))

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_breaking_any_threshold_of_any_rule_makes_the_unit_tests_fail(image: str,
                                                                      tmp_path: Path):
    mutants = tmp_path / "mutants"
    mutants.mkdir()
    described = {}
    unchanged = yaml.safe_load(RULES.read_text())
    # The rules as they are, first: the tests pass them (so a failure below is the mutant's).
    for number, (what, rules) in enumerate([("control: unchanged", unchanged),
                                            *mutations(unchanged)]):
        folder = mutants / f"m{number:03d}"
        folder.mkdir()
        (folder / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        for path in UNIT_TESTS:
            shutil.copy(path, folder / path.name)
        described[folder.name] = what
    for path in [mutants, *mutants.rglob("*")]:  # the image may run as nobody
        path.chmod(0o755 if path.is_dir() else 0o644)

    # The quick file for every mutant, the slow one for those that pass it.
    passed = passing(image, mutants, [f"{name}/{UNIT_TESTS[0].name}" for name in described])
    survivors = [described[Path(path).parent.name] for path in passing(
        image, mutants, [f"{Path(path).parent}/{UNIT_TESTS[1].name}" for path in passed])]
    assert survivors == ["control: unchanged"], "unit tests still pass with: " + "; ".join(
        survivors[1:])
    for rule in alerts():  # every rule was broken at least once
        assert any(what.startswith(f"{rule['alert']}:") for what in described.values())


def passing(image: str, folder: Path, files: list[str]) -> list[str]:
    """Which of the unit-test files (paths under `folder`) promtool passes: one container,
    two promtool processes side by side, each over half of the files."""
    if not files:
        return []
    halves = [half for half in (files[0::2], files[1::2]) if half]
    script = "".join(f"promtool test rules {' '.join(f'/work/{f}' for f in half)} "
                     f">/tmp/{i} 2>/dev/null & " for i, half in enumerate(halves))
    done = in_image(image, folder, "sh", "-c", script + "wait; cat /tmp/[0-9]")
    assert done.returncode == 0, done.stderr
    tested, passed = [], []
    for line in done.stdout.splitlines():
        if line.startswith("Unit Testing:"):
            tested.append(line.split("/work/", 1)[1].strip())
        elif line.strip() == "SUCCESS":
            passed.append(tested[-1])
    assert sorted(tested) == sorted(files), done.stdout
    return passed


# --- how a rule is broken -----------------------------------------------------------------

_QUOTED_OR_MATCHERS = re.compile(r'"[^"]*"|\{[^}]*\}')
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")
_TURNED = {"==": "!=", "!=": "==", ">": "<", "<": ">", ">=": "<", "<=": ">"}
_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def mutations(rules: dict) -> Iterator[tuple[str, dict]]:
    """(what was broken, the rule file with it broken), for every number and comparison
    in every alert's expression and every `for`."""
    for group_index, group in enumerate(rules["groups"]):
        for rule_index, rule in enumerate(group["rules"]):
            name, expr = rule["alert"], rule["expr"]
            where = (group_index, rule_index)
            outside = _outside_strings(expr)
            for match in _NUMBER.finditer(expr):
                if outside(match.start()):
                    value = float(match.group())
                    for new in (value * 2 or 1, value / 2 or -1):
                        text = _number(new)
                        yield (f"{name}: {match.group()} -> {text}", _changed(
                            rules, where, "expr", expr[:match.start()] + text + expr[match.end():]))
            for match in _COMPARISON.finditer(expr):
                if outside(match.start()):
                    turned = _TURNED[match.group()]
                    yield (f"{name}: {match.group()} -> {turned}", _changed(
                        rules, where, "expr", expr[:match.start()] + turned + expr[match.end():]))
            if "for" in rule:
                amount, unit = _DURATION.match(rule["for"]).groups()
                seconds = int(amount) * _SECONDS[unit]
                for new in (seconds * 2, seconds // 2):
                    yield (f"{name}: for {rule['for']} -> {new}s",
                           _changed(rules, where, "for", f"{new}s"))


def _changed(rules: dict, where: tuple[int, int], key: str, value: str) -> dict:
    """A copy of the rule file with one field of one rule replaced."""
    copy = yaml.safe_load(yaml.safe_dump(rules))
    group, rule = where
    copy["groups"][group]["rules"][rule][key] = value
    return copy


def _outside_strings(expr: str):
    spans = [m.span() for m in _QUOTED_OR_MATCHERS.finditer(expr)]
    return lambda at: not any(start <= at < end for start, end in spans)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
