"""What an anonymized snapshot would still give away: a sample of each table's rows, anonymized
exactly as `backup --anonymize` writes them, searched for values that look like an email
address or a file path (a home directory names its user).

Classifying every column is necessary but not enough: a column kept as a label vocabulary can
hold an email, a JSON key kept as a status can hold a path. The sample (the newest rows, where
new kinds of data appear first, and a random spread of the rest) catches such values before a
snapshot leaves the building, and says where they are: table, column (and JSON key), row.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql

from ops.anonymize.mask import Anonymizer, TableMask
from ops.anonymize.policy import Policy, PolicyCheck, check_tables
from ops.backup.create import stream_table
from ops.backup.format import JSON_NULL_KEY, column_keys
from ops.core.catalog import Table, discover_tables, table_stats, unique_keys
from ops.core.config import Settings
from ops.core.db import SNAPSHOT_SETTINGS, connection, pin_settings
from ops.core.errors import OpsError
from ops.core.limits import summarize
from ops.core.output import no_progress

SAMPLE_ROWS = 200  # newest, and about as many from random pages (SYSTEM: no full scan)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# An absolute path of two or more parts (/home/ana/repo, ~/work, C:\Users\ana), not a URL's.
_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/[\w.-]+)(?:/[\w.-]+)+|\b[A-Za-z]:\\[\w.-]+\\")


@dataclass(frozen=True)
class Leak:
    table: str
    field: str  # the column, and the JSON key path below it
    row: str  # the row's primary key, as `id 42`
    kind: str  # "email-like" or "path-like"

    def __str__(self) -> str:
        return f"{self.table}.{self.field} ({self.row}): {self.kind}"


def sample_leaks(conn: psycopg.Connection, tables: list[Table], masks: dict[str, TableMask],
                 allowed_domains: set[str]) -> list[Leak]:
    """Email- or path-like values in a sample of each table's anonymized rows (emails at
    `allowed_domains`, the fakes', excepted); at most one finding per table and field."""
    stats = table_stats(conn, tables)
    leaks: dict[tuple[str, str], Leak] = {}
    for table in tables:
        for row in _sampled_rows(conn, table, masks.get(table.name),
                                 stats[table.name].rows_estimate):
            for field, kind in suspicious_fields(row, allowed_domains):
                leaks.setdefault((table.name, field),
                                 Leak(table.name, field, _row_label(table, row), kind))
    return list(leaks.values())


def refuse_leaks(leaks: list[Leak], policy: Policy) -> None:
    """One line naming where sampled values still look personal, when any do."""
    if leaks:
        raise OpsError(f"{len(leaks)} field(s) still look personal after anonymizing a sample "
                       f"of rows: {summarize([str(leak) for leak in leaks], 4)}; nothing was "
                       "written",
                       hint=f"Transform those fields in {policy.path} (a transformer for the "
                       "column, or a key rule in its json rule, e.g. identifier).")


def check_snapshot_policy(settings: Settings, policy: Policy) -> PolicyCheck:
    """`anonymize check`: every column classified, and a sample of rows anonymized without
    anything email- or path-like left. The fakes' key is a random one: their shape is what
    matters here, and the check needs no ANONYMIZE_SALT."""
    anonymizer = Anonymizer(policy, secrets.token_bytes(32))
    with connection(settings) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        pin_settings(conn, SNAPSHOT_SETTINGS, local=True)
        tables = discover_tables(conn)
        result = check_tables(policy, tables)
        masks = anonymizer.masks(tables, tables, unique_keys(conn),
                                 lambda t: column_keys(t.column_names))
        refuse_leaks(sample_leaks(conn, tables, masks, anonymizer.fake_domains), policy)
        conn.rollback()
    return result


def _sampled_rows(conn: psycopg.Connection, table: Table, mask: TableMask | None,
                  estimate: int) -> Iterator[dict[str, Any]]:
    newest = sql.SQL("SELECT * FROM {} {} LIMIT {}").format(
        table.ident, sql.SQL("ORDER BY {} DESC").format(sql.SQL(", ").join(
            sql.Identifier(c) for c in table.primary_key)) if table.primary_key else sql.SQL(""),
        sql.Literal(SAMPLE_ROWS))
    percent = min(100.0, 100.0 * SAMPLE_ROWS / max(estimate, 1))
    spread = sql.SQL("SELECT * FROM {} TABLESAMPLE SYSTEM ({}) LIMIT {}").format(
        table.ident, sql.Literal(percent), sql.Literal(SAMPLE_ROWS))
    source = sql.SQL("(({}) UNION ALL ({})) x").format(newest, spread)
    lines: list[bytes] = []
    pending = b""

    def collect(data: bytes) -> None:
        nonlocal pending
        *done, pending = (pending + data).split(b"\n")
        lines.extend(line.rstrip(b",") for line in done if line.strip(b","))

    stream_table(conn, table, collect, no_progress, source, mask)
    for line in lines:
        yield orjson.loads(line)


def suspicious_fields(value: Any, allowed: set[str], path: str = ""
                      ) -> Iterator[tuple[str, str]]:
    """(dotted field path, "email-like" or "path-like") of each string in `value` that looks
    like an email not at an `allowed` domain, or a file path."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not path and key == JSON_NULL_KEY:
                continue
            yield from suspicious_fields(item, allowed, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from suspicious_fields(item, allowed, path)
    elif isinstance(value, str):
        if any(m["domain"].lower() not in allowed for m in _EMAIL.finditer(value)):
            yield path, "email-like"
        elif _PATH.search(value):
            yield path, "path-like"


def _row_label(table: Table, row: dict[str, Any]) -> str:
    keys = column_keys(table.column_names)
    if not table.primary_key:
        return "a sampled row"
    return ", ".join(f"{c} {row.get(keys[c])}" for c in table.primary_key)
