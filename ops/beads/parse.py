"""Read a beads `issues.jsonl` export (any format version): pure parsing, no database.

beads (the git-backed issue tracker, CLI `bd`) writes one JSON object per line. Only id and
title are required here; everything else is optional and unknown fields are kept untouched
in `BeadsIssue.raw`. Newer exports add a `{"_schema": ...}` header and `{"_type": "memory"}`
lines (skipped and counted); `_type: "issue"` lines, or lines without `_type`, are issues.
Timestamps are RFC 3339 with `Z` or an offset and 0-9 fractional digits (Go writes up to 9);
they become timezone-aware datetimes (microseconds; no offset means UTC).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ops.core.errors import NotFound, OpsError
from ops.core.fields import MAX_MINUTES
from ops.core.limits import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    check_indexed,
    check_json,
    check_text,
)
from ops.core.output import suggest_flag

TIMESTAMP_FIELDS = ("created_at", "updated_at", "closed_at", "started_at", "due_at",
                    "defer_until", "deleted_at")
INVALID_SHOWN = 5  # invalid lines named in the all-or-nothing error message
# One issue as stored: its fields end up in metadata["beads"] (two levels further down).
MAX_ISSUE_DEPTH = MAX_JSON_DEPTH - 2
# Every stored text (description, metadata) is a part of the issue: an issue within the
# shared limit, less room for the wrapping, keeps each of them within it too.
MAX_ISSUE_BYTES = MAX_JSON_BYTES - 4096

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$"
)


@dataclass
class BeadsIssue:
    """One issue line: the normalised fields the mapping needs, plus the raw object."""

    line: int
    id: str
    title: str
    raw: dict[str, Any]
    times: dict[str, datetime]  # TIMESTAMP_FIELDS present and non-zero
    tombstone: bool
    ephemeral: bool

    @property
    def updated_at(self) -> datetime | None:
        return self.times.get("updated_at") or self.times.get("created_at")


@dataclass
class InvalidLine:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ParsedBeads:
    """Issues in file order (duplicates resolved, ephemeral filtered) and what was skipped."""

    issues: list[BeadsIssue] = field(default_factory=list)
    invalid: list[InvalidLine] = field(default_factory=list)
    lines: int = 0
    header_lines: int = 0
    memory_lines: int = 0
    other_lines: int = 0  # `_type` values we do not know
    ephemeral: list[BeadsIssue] = field(default_factory=list)  # skipped unless included
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)


def parse_timestamp(value: Any) -> datetime | None:
    """RFC 3339 text -> datetime in UTC; None for empty or Go's zero time; ValueError if bad.

    In UTC because PostgreSQL refuses offsets beyond 15:59 that RFC 3339 allows (-23:59),
    and a time that is no longer a year-9999 time in UTC is refused here, not by the database.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {_short(value)}")
    try:  # fast path: Python 3.11 reads Z, offsets and long fractions (truncating)
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_rfc3339(value)
    if parsed is None or parsed.year <= 1:
        return None
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"{_short(value)} is out of range in UTC") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_rfc3339(value: str) -> datetime | None:
    """The slow path for what fromisoformat refuses (lower-case z, comma fractions...)."""
    m = _RFC3339.match(value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {_short(value)}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if int(year) <= 1:  # Go's time.Time{} serialises as 0001-01-01T00:00:00Z: "unset"
        return None
    tz = UTC
    micro = int((fraction or "0")[:6].ljust(6, "0"))  # nanoseconds are truncated
    try:
        if offset and offset not in ("Z", "z"):
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = timezone(-delta if offset[0] == "-" else delta)
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                        int(second or 0), micro, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {_short(value)} ({exc})") from None


def parse_file(path: Path, *, skip_invalid: bool = False,
               include_ephemeral: bool = False) -> ParsedBeads:
    """Parse an export file; a missing file or (without skip_invalid) bad lines -> OpsError."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise NotFound(f"beads file not found: {path}",
                       hint="Pass --file PATH or set BEADS_FILE (default .beads/issues.jsonl; "
                       "`bd export` writes it).") from None
    except OSError as exc:
        raise OpsError(f"cannot read beads file {path}: {exc.strerror}") from None
    with fh:
        parsed = parse_lines(fh, include_ephemeral=include_ephemeral)
    if parsed.invalid and not skip_invalid:
        shown = "; ".join(str(bad) for bad in parsed.invalid[:INVALID_SHOWN])
        more = len(parsed.invalid) - INVALID_SHOWN
        raise OpsError(
            f"{len(parsed.invalid)} invalid line(s) in {path}: {shown}"
            + (f"; and {more} more" if more > 0 else "") + " — nothing was imported",
            hint=f"Fix those lines, or import the rest: {suggest_flag('--skip-invalid')}.",
        )
    return parsed


def parse_lines(lines: Iterable[bytes | str], *, include_ephemeral: bool = False) -> ParsedBeads:
    """Parse JSONL lines (any length); invalid lines are collected, never raised."""
    parsed = ParsedBeads()
    by_id: dict[str, BeadsIssue] = {}
    for number, line in enumerate(lines, start=1):
        parsed.lines = number
        issue = _parse_line(number, line, parsed)
        if issue is None:
            continue
        earlier = by_id.get(issue.id)
        if earlier is not None:
            parsed.duplicates += 1
            winner = _newer(earlier, issue)
            parsed.warnings.append(
                f"duplicate id {issue.id} on lines {earlier.line} and {issue.line}: "
                f"kept line {winner.line} (later updated_at)")
            issue = winner
        by_id[issue.id] = issue
    for issue in sorted(by_id.values(), key=lambda i: i.line):
        if issue.ephemeral and not include_ephemeral:
            parsed.ephemeral.append(issue)
        else:
            parsed.issues.append(issue)
    return parsed


def _newer(a: BeadsIssue, b: BeadsIssue) -> BeadsIssue:
    """The later updated_at wins; on a tie (or no timestamps) the later line does."""
    floor = datetime.min.replace(tzinfo=UTC)
    return a if (a.updated_at or floor) > (b.updated_at or floor) else b


def _parse_line(number: int, line: bytes | str, parsed: ParsedBeads) -> BeadsIssue | None:
    def invalid(reason: str) -> None:
        parsed.invalid.append(InvalidLine(number, reason))

    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            invalid(f"not UTF-8 ({exc.reason} at byte {exc.start})")
            return None
    text = line.strip().lstrip("\ufeff")
    if not text:
        return None
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        invalid(f"malformed JSON ({exc.msg} at column {exc.colno})")
        return None
    except ValueError as exc:
        invalid(f"malformed JSON ({exc})")
        return None
    except RecursionError:
        invalid(f"nested more than {MAX_ISSUE_DEPTH} levels deep")
        return None
    if not isinstance(obj, dict):
        invalid(f"expected a JSON object, got {type(obj).__name__}")
        return None
    kind = obj.get("_type")
    if "_schema" in obj and "id" not in obj:
        parsed.header_lines += 1
        return None
    if kind == "memory":
        parsed.memory_lines += 1
        return None
    if kind not in (None, "issue"):
        parsed.other_lines += 1
        return None
    issue_id, title = obj.get("id"), obj.get("title")
    if isinstance(issue_id, int) and not isinstance(issue_id, bool):
        issue_id = str(issue_id)
    if not isinstance(issue_id, str) or not issue_id.strip():
        invalid("missing id")
        return None
    try:
        check_indexed(issue_id, "the id")
    except ValueError as exc:
        invalid(str(exc))
        return None
    if not isinstance(title, str) or not title.strip():
        invalid(f"{issue_id}: missing title")
        return None
    times: dict[str, datetime] = {}
    try:
        for name, value in obj.items():  # field by field first, so the message names it
            check_json(value, name, max_depth=MAX_ISSUE_DEPTH - 1, max_bytes=MAX_ISSUE_BYTES)
        check_json(obj, "the issue", max_depth=MAX_ISSUE_DEPTH, max_bytes=MAX_ISSUE_BYTES)
        check_text(title, "title")
        for name in TIMESTAMP_FIELDS:
            value = field_timestamp(obj, name, name)
            if value is not None:
                times[name] = value
        _check_shapes(obj)
    except ValueError as exc:
        invalid(f"{issue_id}: {exc}")
        return None
    status = obj.get("status")
    return BeadsIssue(
        line=number,
        id=issue_id.strip(),
        title=title.strip(),
        raw=obj,
        times=times,
        tombstone=status == "tombstone" or "deleted_at" in times,
        ephemeral=obj.get("ephemeral") is True or obj.get("wisp") is True,
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def field_timestamp(obj: dict[str, Any], name: str, what: str) -> datetime | None:
    """`obj[name]` as a UTC datetime (None if unset); ValueError naming `what` if bad."""
    try:
        return parse_timestamp(obj.get(name))
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _check_shapes(obj: dict[str, Any]) -> None:
    """The fields the mapping reads have the shapes it expects, and what becomes an indexed
    key or a typed column fits it (ValueError naming the field if not)."""
    for name in ("labels", "comments", "dependencies"):
        entries = obj.get(name)
        if entries is not None and not isinstance(entries, list):
            raise ValueError(f"{name} must be a list, not {type(entries).__name__}")
        if len(entries or ()) > MAX_LIST_ITEMS:
            raise ValueError(f"more than {MAX_LIST_ITEMS} {name}")
    for n, label in enumerate(obj.get("labels") or [], start=1):
        if isinstance(label, str):
            check_indexed(label, f"labels[{n}]")
    for name in ("comments", "dependencies"):
        for n, entry in enumerate(obj.get(name) or [], start=1):
            if not isinstance(entry, dict):
                raise ValueError(f"{name} must be a list of objects ({name}[{n}] is "
                                 f"{type(entry).__name__})")
            field_timestamp(entry, "created_at", f"{name}[{n}].created_at")
            for key in ("id", "issue_id", "depends_on_id", "type", "author"):
                _check_key_text(entry.get(key), f"{name}[{n}].{key}")
            if name == "comments" and isinstance(entry.get("text"), str):
                check_text(entry["text"], f"comments[{n}].text")
            if name == "dependencies" and not entry.get("depends_on_id"):
                raise ValueError(f"dependencies[{n}]: a dependency without depends_on_id")
    minutes = obj.get("estimated_minutes")
    if isinstance(minutes, int | float) and not isinstance(minutes, bool) and not (
            0 <= minutes <= MAX_MINUTES):
        raise ValueError(f"estimated_minutes {minutes:g} is out of range (0 to {MAX_MINUTES})")


def _check_key_text(value: Any, what: str) -> None:
    """An id or type the mapping turns into text (str(value)) for an indexed column."""
    if value is None or value == "":
        return
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    check_indexed(str(value), what)
