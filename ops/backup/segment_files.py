"""Change segment naming and what a segment's sidecar tells: the part of the change-segment
format the archive needs to list and prune segments (ops.capture.segments writes and reads
their content; it sits above the backup step, so the names live here, beside backup names).

    changes-{start:016X}-{end:016X}.jsonl.zst[.age]      (+ NAME.sum, its sidecar)

`start` is the LSN the segment starts after (the slot's confirmed position before it), `end`
the end LSN of its last transaction: sorting names sorts by LSN, and a store holds every
change when each segment starts where the previous one ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

SEGMENT_PREFIX = "changes-"
SEGMENT_KIND = "changes"  # the sidecar's kind
_NAME = re.compile(r"^changes-(?P<start>[0-9A-F]{16})-(?P<end>[0-9A-F]{16})\.jsonl\.zst"
                   r"(?P<age>\.age)?$")


@dataclass(frozen=True)
class SegmentInfo:
    """One stored segment: its LSN range from its name; commit times and counts from its
    sidecar (None when it has none, or it is not read yet)."""

    name: str
    start_lsn: int
    end_lsn: int
    first_commit: datetime | None = None
    last_commit: datetime | None = None
    encrypted: bool = False
    size: int = 0
    transactions: int | None = None
    revision: str | None = None
    # up to when the writer knew it had every change (at least last_commit): a quiet
    # database is covered past its last commit
    complete_until: datetime | None = None


def lsn_text(lsn: int) -> str:
    """PostgreSQL's text form of an LSN: 16/B374D848."""
    if not 0 <= lsn < 1 << 64:
        raise ValueError(f"not an LSN: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The LSN `16/B374D848` is; ValueError for anything else."""
    high, slash, low = str(text).partition("/")
    if not slash or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def segment_name(start_lsn: int, end_lsn: int, *, encrypted: bool) -> str:
    if not 0 <= start_lsn <= end_lsn < 1 << 64:
        raise ValueError(f"not an LSN range: {start_lsn}..{end_lsn}")
    return f"{SEGMENT_PREFIX}{start_lsn:016X}-{end_lsn:016X}.jsonl.zst" + (
        ".age" if encrypted else "")


def parse_segment_name(name: str, size: int = 0) -> SegmentInfo | None:
    """The segment `name` is (range and encryption only); None when it is not a segment."""
    match = _NAME.match(name)
    if match is None:
        return None
    start, end = int(match["start"], 16), int(match["end"], 16)
    if end < start:
        return None
    return SegmentInfo(name, start, end, encrypted=match["age"] is not None, size=size)


def commit_time(text: object) -> datetime | None:
    """An ISO timestamp with a zone, as segments and their sidecars write them; None when
    absent or not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# How far before a backup's snapshot replay looks for the transactions that snapshot missed
# while they were committing ("committedInSnapshot": their commit records may precede
# walLsn). Such a commit waits for a synchronous standby, and that wait has no bound; the
# search must have one, and retention must know what to keep: a commit stalled longer than
# this is refused by name (the standby was gone for minutes) rather than searched for
# through the whole store.
LOOK_BACK = timedelta(minutes=10)


def walk_back(segments: Sequence[SegmentInfo], start: int, since: datetime,
              facts: Callable[[SegmentInfo], SegmentInfo]) -> Iterator[SegmentInfo]:
    """The segments before the LSN `start` (and before the one holding it), newest first,
    without a gap, until one whose commits are all before `since` (with their sidecar
    facts, from `facts`)."""
    position = min(start, min((s.start_lsn for s in segments if s.end_lsn > start),
                              default=max((s.end_lsn for s in segments), default=start)))
    for seg in sorted((s for s in segments if s.end_lsn <= start),
                      key=lambda s: (s.end_lsn, s.start_lsn), reverse=True):
        if seg.start_lsn >= position:
            continue  # a range stored twice, walked already
        if seg.end_lsn < position:
            return  # a gap: what came before cannot be read without it
        seg = facts(seg)
        latest = seg.last_commit or seg.complete_until
        if latest is not None and latest < since:
            return
        yield seg
        position = seg.start_lsn
