"""Change coverage: from when to when the stored change segments let a restore reach, where
the chain of LSN ranges breaks, and how far behind now the last stored change is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ops.backup.archive import FULL, Archive
from ops.backup.files import utc_now
from ops.capture.segments import SegmentInfo, lsn_text, parse_lsn, segment_facts


@dataclass
class Coverage:
    """The change segments as one chain: from when to when, and where it breaks."""

    segments: list[SegmentInfo]  # in LSN order (as named: read facts with segment_facts)
    start: datetime | None  # first commit
    end: datetime | None  # up to when every change is stored
    gaps: list[tuple[str, str]] = field(default_factory=list)  # (from LSN, to LSN) missing
    lag_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None,
                "segments": len(self.segments),
                "bytes": sum(s.size for s in self.segments),
                "gaps": [{"from": a, "to": b} for a, b in self.gaps],
                "lagSeconds": self.lag_seconds}

    def describe(self) -> str:
        """`2026-12-07T14:00:00Z to 2026-12-07T15:00:05Z`, and the gaps (none: no changes)."""
        if not self.segments:
            return "nowhere (no change segments)"
        span = f"{when(self.start)} to {when(self.end)}"
        return span + (f" with {len(self.gaps)} gap(s)" if self.gaps else "")

    def line(self) -> str:
        """One line for `backups`."""
        lag = f", lag {self.lag_seconds:.0f}s" if self.lag_seconds is not None else ""
        gaps = "".join(f"; GAP {a}..{b}" for a, b in self.gaps)
        return (f"{len(self.segments)} change segment(s), "
                f"{sum(s.size for s in self.segments)} bytes: restore --at covers "
                f"{self.describe()}{lag}{gaps}")


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "unknown"


def coverage(archive: Archive, now: datetime | None = None) -> Coverage:
    """The segments the archive holds, their time range, the LSN gaps between them and the
    lag (now - up to when changes are stored)."""
    listed = archive.segments()  # in LSN order
    gaps: list[tuple[str, str]] = []
    position: int | None = None
    for seg in listed:
        if position is not None and seg.start_lsn > position:
            gaps.append((lsn_text(position), lsn_text(seg.start_lsn)))
        position = seg.end_lsn if position is None else max(position, seg.end_lsn)
    first = next((segment_facts(archive, s) for s in listed
                  if s.end_lsn > s.start_lsn), None)
    last = segment_facts(archive, listed[-1]) if listed else None
    end = covered_until(last) if last else None
    lag = (now or utc_now()) - end if end else None
    return Coverage(listed, first.first_commit if first else None, end, gaps,
                    round(lag.total_seconds(), 3) if lag is not None else None)


def covered_until(seg: SegmentInfo) -> datetime | None:
    known = [m for m in (seg.complete_until, seg.last_commit) if m is not None]
    return max(known) if known else None


def base_missing(archive: Archive, position: int, revision: str | None, *,
                 initial: bool = False) -> str | None:
    """Why replay could not reach `position` (where the slot stands) from the newest full
    backup that records its start, or None when it can. A capture killed after advancing past
    a migration or a transaction too big to keep, before the full backup it then takes, leaves
    exactly this: a revision the newest backup does not have, or a range no segment holds.
    `initial` (capture takes a base when it creates its slot): no such backup at all is one
    missing too (a capture killed between creating its slot and that backup)."""
    newest = archive.latest(kinds=(FULL,), prefer_verified=False,
                            accept=lambda _, facts: bool((facts.capture or {}).get("walLsn")))
    if newest is None:
        return "no full backup records where change replay starts" if initial else None
    facts = archive.facts(newest)
    if revision is not None and facts.revision not in (None, revision):
        return f"the newest full backup is at schema revision {facts.revision}, the changes " \
               f"at {revision}"
    reached = parse_lsn(str((facts.capture or {})["walLsn"]))
    for seg in archive.segments():  # in LSN order
        if seg.end_lsn <= reached:
            continue
        if seg.start_lsn > reached:
            break
        reached = seg.end_lsn
    if reached < position:
        return f"no change segment holds {lsn_text(reached)} to {lsn_text(position)}"
    return None
