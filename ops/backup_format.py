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
  session settings in `ops.db.connect` (UTC, ISO dates, ISO 8601 intervals, hex bytea), with
  keys renamed to camelCase. Every column is present; NULL is `null`.
- `meta` comes last (counts and checksums are known only after streaming). It holds: tool,
  toolVersion, alembicRevision, database (name only), serverVersion, tables (ordered list),
  rowCounts {table: n}, sha256 {table: hex}, totalRows, partial (tables/excludeTables given),
  compressed.
- A table's sha256 is over each row line's UTF-8 bytes (without the separating comma) followed
  by b"\\n", in file order: `verify` recomputes it without parsing rows.
- Files we did not write (the seed tool's, or re-indented ones) are still valid JSON; readers
  fall back to a streaming parser for them.
- `.json.gz` is gzip of the same bytes; readers detect gzip by its magic bytes, not the name.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import BinaryIO

FORMAT_VERSION = "1.0"
SUPPORTED_VERSIONS = frozenset({"1.0"})
GZIP_MAGIC = b"\x1f\x8b"

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")
_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel_case(column: str) -> str:
    """tenant_id -> tenantId (the seed's JSON keys)."""
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), column)


def snake_case(key: str) -> str:
    """tenantId -> tenant_id."""
    return _SNAKE_BOUNDARY.sub(lambda m: "_" + m.group(1).lower(), key)


def key_to_column(columns: list[str]) -> dict[str, str]:
    """Map every accepted JSON key (camelCase and the column's own name) to its column."""
    mapping: dict[str, str] = {}
    for column in columns:
        mapping[camel_case(column)] = column
    for column in columns:  # the exact name wins over a camelCase collision
        mapping[column] = column
    return mapping


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_backup(path: Path) -> BinaryIO:
    """Open a backup for reading as bytes, decompressing when the content is gzip."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")
