"""Synthetic beads exports of any size, for tests and the import benchmark.

    from ops.dev.beads_fixtures import write_synthetic
    write_synthetic(Path("/tmp/issues.jsonl"), 10_000)

Deterministic for a given (n, seed). Blocks of 50 issues: one epic, four features (dotted
ids + parent-child edges), tasks under features (edges) and subtasks found only by their
dotted id, `blocks`/`related` dependencies, labels (some namespaced), comments, every
timestamp style beads writes (Z, offsets, 0-9 fractional digits), missing priorities, and
about 1% tombstones and 1% ephemeral wisps. A header and a memory line open the file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BLOCK = 50
FEATURES_PER_BLOCK = 4
LABELS = ("backend", "frontend", "api", "db", "ux", "security", "perf", "docs", "infra", "ci",
          "gh:101", "gh:788", "area:auth", "area:billing", "good-first-issue")
STATUSES = ("open", "open", "open", "in_progress", "blocked", "closed", "closed", "deferred")
TASK_TYPES = ("task", "task", "task", "bug", "bug", "chore", "spike", "decision")
PEOPLE = ("ramesh@systech.com", "alice", "bob@example.com", None, None)
START = datetime(2025, 1, 1, tzinfo=UTC)


def synthetic_issues(n: int, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`n` beads issue objects (header/memory lines not included)."""
    rng = random.Random(seed)
    for block, start in enumerate(range(0, n, BLOCK)):
        yield from _block(rng, f"bd-s{block}", min(BLOCK, n - start), block)


def write_synthetic(path: Path, n: int, *, seed: int = 7) -> Path:
    """Write a header, a memory line and `n` issues to `path` (one JSON object per line)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"_schema": {"name": "beads-issues", "version": 2}}) + "\n")
        fh.write(json.dumps({"_type": "memory", "id": "mem-1", "content": "synthetic"}) + "\n")
        for issue in synthetic_issues(n, seed=seed):
            fh.write(json.dumps(issue, separators=(",", ":")) + "\n")
    return path


def _block(rng: random.Random, epic: str, size: int, block: int) -> Iterator[dict[str, Any]]:
    base = START + timedelta(hours=block)
    yield _issue(rng, epic, f"Epic {block}", "epic", base)
    features = [f"{epic}.{k}" for k in range(1, FEATURES_PER_BLOCK + 1)][:max(size - 1, 0)]
    for feature in features:
        yield _issue(rng, feature, f"Feature {feature}", "feature", base, parent=epic)
    tasks: list[str] = []
    for k in range(size - 1 - len(features)):
        feature = features[k % len(features)] if features else epic
        if tasks and k % 5 == 4:  # a subtask known only by its dotted id
            task, parent = f"{tasks[-1]}.1", None
        else:
            task, parent = f"{feature}.{k + 1 + FEATURES_PER_BLOCK}", feature
        issue = _issue(rng, task, f"Task {task}", rng.choice(TASK_TYPES), base, parent=parent)
        if tasks and rng.random() < 0.3:
            issue.setdefault("dependencies", []).append(_edge(
                task, rng.choice(tasks), rng.choice(("blocks", "blocks", "related")), base))
        tasks.append(task)
        yield issue


def _issue(rng: random.Random, issue_id: str, title: str, issue_type: str, base: datetime,
           parent: str | None = None) -> dict[str, Any]:
    created = base + timedelta(minutes=rng.randrange(0, 600), microseconds=rng.randrange(10**6))
    updated = created + timedelta(hours=rng.randrange(0, 48))
    issue: dict[str, Any] = {
        "id": issue_id, "title": title,
        "description": f"Synthetic {issue_type} {issue_id}. " * rng.randrange(1, 4),
        "status": rng.choice(STATUSES), "issue_type": issue_type,
        "created_at": _timestamp(rng, created), "updated_at": _timestamp(rng, updated),
    }
    if rng.random() > 0.05:  # beads omits priority 0
        issue["priority"] = rng.randrange(0, 5)
    if issue["status"] == "closed":
        issue["closed_at"] = _timestamp(rng, updated)
    person = rng.choice(PEOPLE)
    if person:
        issue["assignee"] = person
    labels = rng.sample(LABELS, rng.randrange(0, 4))
    if labels:
        issue["labels"] = sorted(labels)
    if rng.random() < 0.3:
        issue["comments"] = [
            {"id": rng.randrange(1, 10**6), "issue_id": issue_id, "author": "alice",
             "text": f"Comment {c} on {issue_id}",
             "created_at": _timestamp(rng, created + timedelta(minutes=c + 1))}
            for c in range(rng.randrange(1, 3))]
    if parent:
        issue["dependencies"] = [_edge(issue_id, parent, "parent-child", created)]
    roll = rng.random()
    if roll < 0.01 and issue_type != "epic":
        issue.update(status="tombstone", original_type=issue_type, issue_type="tombstone",
                     deleted_at=_timestamp(rng, updated), delete_reason="synthetic")
    elif roll < 0.02 and issue_type not in ("epic", "feature"):
        issue["ephemeral"] = True
    return issue


def _edge(child: str, target: str, dep_type: str, at: datetime) -> dict[str, Any]:
    return {"issue_id": child, "depends_on_id": target, "type": dep_type,
            "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "created_by": "synthetic"}


def _timestamp(rng: random.Random, value: datetime) -> str:
    """RFC 3339 in the styles beads writes: Z or an offset, 0, 3, 6 or 9 fractional digits."""
    offset = rng.choice((0, 0, 330, -420))
    local = value.astimezone(UTC) + timedelta(minutes=offset)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    digits = rng.choice((0, 3, 6, 9))
    if digits:
        text += "." + f"{local.microsecond:06d}{rng.randrange(1000):03d}"[:digits]
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    return text + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
