"""`verify --changes`: is every stored change segment whole, and do they follow each other?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.backup.archive import Archive
from ops.capture.coverage import coverage
from ops.capture.segments import SegmentCheck, verify_segment
from ops.core.output import SILENT, Reporter


@dataclass
class ChangesVerified:
    ok: bool
    segments: int = 0
    transactions: int = 0
    covered: str = ""  # from when to when
    checks: list[SegmentCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: segment, or gap


def verify_changes(archive: Archive, identities: Sequence[Any] = (), *,
                   report: Reporter = SILENT) -> ChangesVerified:
    """Check every segment (sidecar, and content when readable) and the LSN chain; problems
    are in the result, never raised."""
    cover = coverage(archive)
    result = ChangesVerified(ok=False, segments=len(cover.segments), covered=cover.describe())
    for info in cover.segments:
        check = verify_segment(archive, info, identities=identities)
        result.checks.append(check)
        result.transactions += check.transactions
        if check.problem:
            result.problems.append(f"{info.name}: {check.problem}")
            report.line(f"❌ {info.name}: {check.problem}")
        else:
            report.line(f"✅ {info.name}: {check.checked}")
    for start, end in cover.gaps:
        result.problems.append(f"changes from {start} to {end} are missing (a gap)")
        report.line(f"❌ gap: no segment holds the changes from {start} to {end}")
    result.ok = not result.problems
    if result.ok:
        report.line(f"✅ {result.segments} change segment(s) verified, "
                    f"{result.transactions} transaction(s) read; covered {result.covered}")
    return result
