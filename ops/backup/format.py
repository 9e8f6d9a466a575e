"""The backup file format: the contract between `backup`, `verify` and `restore`.

Compatible with the seed tool's JSON (`{"timestamp", "version": "1.0", "tables": {...}}`,
rows keyed by camelCase field names) and laid out so a reader can stream it line by line:

    {"timestamp": "2024-01-08T14:30:45.123Z", "version": "1.0", "tables": {
    "tenants": [
    {"id":1,"name":"SysTech","plan":"enterprise",...},
    {"id":2,...}
    ],
    "clients": [
    ],
    ...
    },
    "meta": {...}}

- Exactly one row per line inside each table's array; table openers (`"name": [`) and closers
  (`]` or `],`) on their own lines. Rows are what PostgreSQL's row_to_json produces under the
  session settings pinned by the backup (UTC, ISO dates, ISO 8601 intervals, hex bytea,
  shortest-exact floats), with keys renamed by `column_keys` (camelCase unless that would
  collide). Every column is present, generated ones too; NULL is `null`. NaN and ±Infinity
  (numeric, float) are the strings "NaN"/"Infinity"/"-Infinity". A `json` column (which,
  unlike jsonb, keeps its input text) is written as that exact text in a JSON string; meta
  `jsonText` lists those keys per table. A jsonb value that is JSON null (not SQL NULL,
  which is `null`) is named in one extra field of that row only, `"$jsonNull"`:
  {"key": true} for a column, {"key": [1-based positions]} for JSON-null elements of a
  jsonb array.
- No row line is longer than MAX_ROW_BYTES (the writer refuses to write one, readers to
  read one). A UTF-8 byte-order mark before the first line is ignored.
- Exact byte layout (what `header_line`, `table_open_line`, `table_close_line`, `TABLES_END`
  and `meta_line` write; the parse_* helpers read it back):
      line 1            {"timestamp": "<iso>", "version": "1.0", "tables": {
      per table         "<name>": [            (then its rows, then)   ]  or  ],
      after the tables  },
      last line         "meta": {...}}
- `meta` comes last (counts and checksums are known only after streaming). It holds: tool,
  toolVersion, alembicRevision, database (name only), serverVersion, tables (ordered list),
  columns {table: [column, ...]}, rowCounts {table: n}, sha256 {table: hex}, totalRows,
  partial (null, or {"tables": [...], "excludeTables": [...]} as given), compressed,
  jsonText {table: [key, ...]}, tenant (null, or {"id": n, "name": "..."} for a backup of
  that tenant's rows only: every table, only the rows `ops.core.tenancy` places in it),
  durationSeconds (from the backup's start, the moment in its name, to its meta); an
  anonymized backup (`backup --anonymize`) adds anonymized: true and anonymizePolicySha256,
  and its rows carry the replaced fields last (key order is not part of the contract:
  readers look fields up by name).
- A table's sha256 is over each row line's UTF-8 bytes (without the separating comma) followed
  by b"\\n", in file order: `verify` recomputes it without parsing rows.
- Files we did not write (the seed tool's, or re-indented ones) are still valid JSON; readers
  fall back to a streaming parser for them.
- `.json.zst` is zstd (what `--compress` writes) and `.json.gz` gzip of the same bytes; readers
  detect either by its magic bytes, not the name (ops.backup.compression). Our writer puts the
  meta line in a zstd frame (gzip member) of its own, which concatenated frames are one
  ordinary stream to `zstd -d` (`gunzip`), so `read_meta` finds it from the file's tail
  without decompressing the whole file.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from ops.backup.compression import GZIP, ZSTD, decompressing, detect, last_frame
from ops.core.limits import summarize

FORMAT_VERSION = "1.0"
SUPPORTED_VERSIONS = frozenset({"1.0"})
BOM = b"\xef\xbb\xbf"  # readers skip a UTF-8 byte-order mark an editor may have added
# No row may be longer than this (a backup refuses to write one, readers to read one), so a
# hostile file cannot make a reader hold more than this much at a time.
MAX_ROW_BYTES = 256 << 20
# The extra field a row carries when a jsonb value is JSON null (see above).
JSON_NULL_KEY = "$jsonNull"

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")


def camel_case(column: str) -> str:
    """tenant_id -> tenantId (the seed's JSON keys)."""
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), column)


def key_to_column(columns: list[str]) -> dict[str, str]:
    """Map every accepted JSON key (camelCase and the column's own name) to its column."""
    mapping: dict[str, str] = {}
    for column in columns:
        mapping[camel_case(column)] = column
    for column in columns:  # the exact name wins over a camelCase collision
        mapping[column] = column
    return mapping


def column_keys(columns: Iterable[str]) -> dict[str, str]:
    """The JSON key each column is written under: camelCase, unless that would be ambiguous.

    A camelCase key that another column also produces, or that is another column's own name,
    would lose a column on the way back; such columns keep their exact name, so
    `key_to_column(columns)[column_keys(columns)[c]] == c` always holds.
    """
    names = list(columns)
    camel = {c: camel_case(c) for c in names}
    producers: dict[str, int] = {}
    for key in camel.values():
        producers[key] = producers.get(key, 0) + 1
    exact = set(names)
    return {
        c: key if key == c or (producers[key] == 1 and key not in exact) else c
        for c, key in camel.items()
    }


# --- the exact line layout our writer produces (see the module docstring) ------------------

TABLES_END = b"},\n"
META_PREFIX = b'"meta": '
_HEADER_END = b'"tables": {\n'


def header_line(timestamp: str, version: str = FORMAT_VERSION) -> bytes:
    return (f'{{"timestamp": {json.dumps(timestamp)}, "version": {json.dumps(version)}, '
            '"tables": {\n').encode()


def table_open_line(name: str) -> bytes:
    return json.dumps(name, ensure_ascii=False).encode() + b": [\n"


def table_close_line(last: bool) -> bytes:
    return b"]\n" if last else b"],\n"


def meta_line(meta: dict[str, Any]) -> bytes:
    return META_PREFIX + json.dumps(meta, ensure_ascii=False).encode() + b"}\n"


def parse_header(line: bytes) -> dict[str, Any] | None:
    """{"timestamp", "version"} from our first line; None when the file is laid out otherwise."""
    if not (line.startswith(b'{"timestamp": ') and line.endswith(_HEADER_END)):
        return None
    try:
        value = json.loads(line + b"}}")
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("tables") == {} else None


def parse_table_open(line: bytes) -> str | None:
    """The table name of a `"name": [` line, None for anything else."""
    if not (line.startswith(b'"') and line.endswith(b": [\n")):
        return None
    try:
        value = json.loads(b"{" + line[:-1] + b"]}")
    except ValueError:
        return None
    return next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None


def parse_meta_line(line: bytes) -> dict[str, Any] | None:
    """The meta object of our last line, None for anything else."""
    if not line.startswith(META_PREFIX):
        return None
    try:
        value = json.loads(b"{" + line)
    except ValueError:
        return None
    meta = value.get("meta") if isinstance(value, dict) else None
    return meta if isinstance(meta, dict) else None


def describe_partial(meta: dict[str, Any] | None) -> str | None:
    """What a --tables/--exclude-tables backup holds, from its meta; None for a full one."""
    partial = (meta or {}).get("partial")
    if not isinstance(partial, dict):
        return None
    only = [str(t) for t in partial.get("tables") or []]
    without = [str(t) for t in partial.get("excludeTables") or []]
    return f"only {summarize(only)}" if only else f"without {summarize(without)}"


def describe_tenant(meta: dict[str, Any] | None) -> str | None:
    """`Acme (id 2)` for a backup of one tenant, from its meta (`id 2 (name encrypted)` from
    an encrypted backup's sidecar); None for any other backup."""
    tenant = (meta or {}).get("tenant")
    if not isinstance(tenant, dict):
        return None
    if "name" not in tenant:  # an encrypted backup's sidecar without the identity
        return f"id {tenant.get('id')} (name encrypted)"
    return f"{tenant.get('name')} (id {tenant.get('id')})"


# --- reading meta from the tail, without streaming the whole file -------------------------


def meta_in_tail(tail: bytes) -> dict[str, Any] | None:
    """The meta object at the end of a plain or compressed backup, given its last bytes; None
    when they hold no meta line (another layout, cut short, or encrypted)."""
    return _meta_in_tail(tail) or _meta_in_last_frame(tail)


def _meta_in_tail(tail: bytes) -> dict[str, Any] | None:
    tail = tail.rstrip(b" \t\r\n")
    start = tail.rfind(b"\n" + META_PREFIX)
    if start < 0:
        return None
    return parse_meta_line(tail[start + 1:] + b"\n")


_META_MAX = 4 << 20  # our meta line is far smaller: a bigger frame is not it
_FRAME_TRIES = 64  # frame starts tried from the end before giving up on a file


def _meta_in_last_frame(tail: bytes) -> dict[str, Any] | None:
    """Our meta line is alone in the last zstd frame / gzip member: find and parse it.

    Each try inflates at most _META_MAX bytes, so a decompression bomb costs no more.
    """
    data = last_frame(tail, _META_MAX, _FRAME_TRIES)
    return parse_meta_line(data) if data is not None else None


def open_backup(path: Path) -> BinaryIO:
    """Open a local backup file for reading as bytes, decompressing it if compressed."""
    with path.open("rb") as fh:
        compression = detect(fh.read(4))
    if compression == GZIP:
        # a GzipFile is a binary file; typeshed does not say BinaryIO:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return decompressing(path.open("rb"), ZSTD) if compression else path.open("rb")
