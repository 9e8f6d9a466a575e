"""Limits on what any writer may store: one check shared by the API, `import beads` and the sync.

Why these numbers:
- PostgreSQL refuses a b-tree index entry over about 2,700 bytes ("index row requires N
  bytes"), and external ids, sources, labels (tag names) and names sit in unique indexes,
  some of them two to a key: at most 1,000 UTF-8 bytes each keeps every key under the limit.
- A JSON value nested a few hundred levels deep cannot be serialised back by the API
  ("Maximum serialization depth exceeded"), so one stored value would break every read of
  its table: 32 levels is far beyond any real metadata.
- Text must be valid UTF-8 without NUL: PostgreSQL text cannot hold NUL, and a lone
  surrogate (legal in JSON escapes, not in UTF-8) fails only when the row is written.
- Numbers must be finite (jsonb has no Infinity; JSON text such as 1e400 parses to it) and
  integers within 64 bits, which is what every JSON encoder between the database and a
  client (orjson, JavaScript) carries without loss.

Every check raises ValueError with a short reason naming the field; callers turn it into
their own kind of error (a 422, an invalid beads line, an OpsError).
"""

from __future__ import annotations

import math
from typing import Any

MAX_INDEXED_BYTES = 1000
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1 << 20  # one metadata document, as encoded JSON (approximately)
MAX_TEXT_BYTES = 1 << 20  # one title, description or comment
MAX_LIST_ITEMS = 1000  # labels, comments or dependencies of one item
MAX_JSON_INT = (1 << 63) - 1


def check_text(value: str, what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """`value` when it is storable text of at most `max_bytes` UTF-8 bytes."""
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (a lone surrogate escape)") from None
    if size > max_bytes:
        raise ValueError(f"{what} is {size} bytes long; the limit is {max_bytes}")
    return value


def check_indexed(value: str, what: str) -> str:
    """`value` when it fits a unique index (external ids, sources, labels, names)."""
    return check_text(value, what, max_bytes=MAX_INDEXED_BYTES)


def check_json(value: Any, what: str, *, max_depth: int = MAX_JSON_DEPTH,
               max_bytes: int = MAX_JSON_BYTES) -> Any:
    """`value` when it is a JSON document PostgreSQL stores and the API can serve back.

    Walks iteratively (a hostile document cannot exhaust the stack) and stops at the first
    problem, so the cost is bounded by the limits, not by the input.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"{what} is nested more than {max_depth} levels deep")
        if isinstance(node, str):
            check_text(node, what, max_bytes=max_bytes)
            size += len(node) + 2
        elif isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValueError(f"{what} has a non-text key")
                check_text(key, f"a key in {what}", max_bytes=max_bytes)
                size += len(key) + 4
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            size += 2
            stack.extend((child, depth + 1) for child in node)
        else:
            check_number(node, what)
            size += 8
        if size > max_bytes:
            raise ValueError(f"{what} is larger than {max_bytes} bytes as JSON")
    return value


def check_number(value: Any, what: str) -> Any:
    """`value` unless it is a number JSON consumers cannot carry (infinite, or an integer
    beyond 64 bits); booleans and other scalars pass."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} holds a number out of range (not finite)")
    if isinstance(value, int) and not -MAX_JSON_INT - 1 <= value <= MAX_JSON_INT:
        raise ValueError(f"{what} holds an integer beyond 64 bits")
    return value


def summarize(names: list[str] | tuple[str, ...], shown: int = 5) -> str:
    """`a, b, c, d, e (and 995 more)`: lists in one-line messages stay short."""
    head = ", ".join(str(n) for n in names[:shown])
    rest = len(names) - shown
    return f"{head} (and {rest} more)" if rest > 0 else head
