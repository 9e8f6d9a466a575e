"""Rows holding JSON nested deeper than our JSON code may recurse: read without recursion.

PostgreSQL stores jsonb thousands of levels deep, and row_to_json writes it as it is; but
orjson refuses more than 1,024 levels when parsing (255 when writing) and Python's json
modules and our own walks recurse once per level. So a backup row nested more than
MAX_PARSED_DEPTH levels deep is split iteratively into its fields: those within the limit
are parsed as usual (exactly: Decimal), and a deeper one stays its JSON text (`RawJson`),
which restore hands to PostgreSQL as is - a jsonb column parses it on the server, where
it came from. Rows that shallow cost two byte counts each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# Deep enough for any real document, shallow enough for every recursive encoder and walk
# between the file and COPY (orjson.dumps stops at 255).
MAX_PARSED_DEPTH = 128

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SEPARATORS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KEYS = json.JSONDecoder()  # reads a row's field names


class RawJson:
    """A JSON value kept as its text (too deep to parse); JSON text for a json/jsonb column."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text[:40]!r}…)"

    def elements(self) -> list[RawJson | None]:
        """The items of a JSON array, each as text (null: None): a json[]/jsonb[] column."""
        text = self.text
        if not text.startswith("["):
            raise ValueError("not a JSON array")
        items: list[RawJson | None] = []
        for start, end in _members(text, 0, "[", "]"):
            item = text[start:end]
            items.append(None if item == "null" else RawJson(item))
        return items


def is_deep(content: bytes) -> bool:
    """Whether a row's JSON text nests more than MAX_PARSED_DEPTH levels (cheap when not)."""
    if content.count(b"[") + content.count(b"{") <= MAX_PARSED_DEPTH:
        return False
    return depth_of(content.decode()) > MAX_PARSED_DEPTH


def depth_of(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets in strings skipped)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads_deep_row(content: bytes, loads: Callable[[str], Any]) -> Any:
    """A row object whose fields nested within MAX_PARSED_DEPTH are parsed with `loads` and
    the deeper ones kept as RawJson; ValueError when it is not a JSON object."""
    text = content.decode()
    start = skip_whitespace(text, 0)
    if not text.startswith("{", start):
        raise ValueError("expected a JSON object")
    row: dict[str, Any] = {}
    for key_start, end in _members(text, start, "{", "}"):
        key, after = _KEYS.raw_decode(text, key_start)
        if not isinstance(key, str):
            raise ValueError("expected a field name")
        colon = skip_whitespace(text, after)
        if not text.startswith(":", colon):
            raise ValueError("expected ':' after a field name")
        value = text[skip_whitespace(text, colon + 1):end]
        row[key] = RawJson(value) if depth_of(value) > MAX_PARSED_DEPTH - 1 else loads(value)
    return row


def skip_whitespace(text: str, pos: int) -> int:
    """The position after the JSON whitespace at `pos`."""
    match = _WHITESPACE.match(text, pos)  # matches always: the pattern takes the empty string
    return match.end() if match else pos


def _members(text: str, pos: int, opening: str, closing: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level member of the array or object opening at `pos` (the
    text between its commas, whitespace trimmed), which must end the text. Iterative: any
    depth; brackets inside strings are skipped."""
    if text[pos] != opening:
        raise ValueError(f"expected {opening!r}")
    spans: list[tuple[int, int]] = []
    depth = 0
    start = pos + 1
    for match in _SEPARATORS.finditer(text, pos):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                if token != closing or skip_whitespace(text, match.end()) != len(text):
                    raise ValueError("unbalanced brackets or content after the value")
                if spans or text[start:match.start()].strip():
                    spans.append(_span(text, start, match.start()))
                return spans
        elif token == "," and depth == 1:
            spans.append(_span(text, start, match.start()))
            start = match.end()
    raise ValueError("truncated JSON (brackets not closed)")


def _span(text: str, start: int, end: int) -> tuple[int, int]:
    start = skip_whitespace(text, start)
    while end > start and text[end - 1] in " \t\n\r":
        end -= 1
    if end == start:
        raise ValueError("an empty member")
    return start, end
