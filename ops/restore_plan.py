"""How a backup's rows map onto a live table: which JSON key feeds which column, and how each
value becomes what COPY expects.

Values arrive as json.loads made them (Decimal for non-integers, so nothing is rounded):
strings, numbers and booleans go to COPY as they are, lists become PostgreSQL arrays, and
json/jsonb values are serialised back to JSON text (keeping Decimal digits such as `22.30`).
A JSON null is SQL NULL, also in a jsonb column (row_to_json cannot tell the two apart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

from ops.backup_format import key_to_column
from ops.errors import OpsError
from ops.tables import Column, Table

_JSON_TYPES = frozenset({"json", "jsonb"})


def is_json_type(column: Column) -> bool:
    return column.type.removesuffix("[]").removesuffix("[]") in _JSON_TYPES


def json_text(value: Any) -> str:
    """JSON text for a parsed value, keeping Decimal digits exactly (json.dumps cannot)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{" + ",".join(f"{_string(k)}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, str):
        return _string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int | Decimal):
        return str(value)
    return json.dumps(value)  # floats (NaN/Infinity constants) stay as json writes them


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _json_elements(value: Any) -> Any:
    """A json[]/jsonb[] array: each element to JSON text.

    One-dimensional: a nested list is a JSON array element (row_to_json cannot tell it from
    a second dimension, and multi-dimensional jsonb arrays are vanishingly rare).
    """
    if not isinstance(value, list):
        return value  # not an array: COPY reports it against the row
    return [None if v is None else json_text(v) for v in value]


@dataclass
class TablePlan:
    """The COPY column list for one table and the row -> values conversion, fixed by the
    table's first row (every row of a table carries the same fields)."""

    table: Table
    keys: tuple[str, ...]  # JSON keys feeding `columns`, same order
    columns: tuple[str, ...]
    field_count: int  # fields per row, including skipped generated / dropped ones
    dropped: list[str] = field(default_factory=list)  # file fields with no column
    defaulted: list[str] = field(default_factory=list)  # columns the file does not have
    _json: tuple[int, ...] = ()
    _json_arrays: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.table.columns}
        self._json = tuple(i for i, c in enumerate(self.columns)
                           if is_json_type(by_name[c]) and not by_name[c].type.endswith("[]"))
        self._json_arrays = tuple(i for i, c in enumerate(self.columns)
                                  if is_json_type(by_name[c]) and by_name[c].type.endswith("[]"))
        getter = itemgetter(*self.keys) if self.keys else (lambda row: ())
        if len(self.keys) == 1:
            self._get = lambda row: (getter(row),)
        else:
            self._get = getter

    def values(self, row: Any, row_no: int, line_no: int | None) -> tuple | list:
        """The COPY values for one row; bad shapes raise an OpsError naming the row."""
        if not isinstance(row, dict) or len(row) != self.field_count:
            raise self.row_error(row, row_no, line_no)
        try:
            values = self._get(row)
        except KeyError:
            raise self.row_error(row, row_no, line_no) from None
        if self._json or self._json_arrays:
            values = list(values)
            for i in self._json:
                if values[i] is not None:
                    values[i] = json_text(values[i])
            for i in self._json_arrays:
                if values[i] is not None:
                    values[i] = _json_elements(values[i])
        return values

    def row_error(self, row: Any, row_no: int, line_no: int | None) -> OpsError:
        where = row_label(self.table.name, row_no, line_no)
        if not isinstance(row, dict):
            return OpsError(f"{where}: expected an object of field -> value, got "
                            f"{type(row).__name__}; nothing was changed")
        missing = sorted(set(self.keys) - set(row))
        extra = sorted(set(row) - set(self.keys))
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
            ([f"unexpected {', '.join(extra)}"] if extra else [])
        return OpsError(f"{where}: its fields differ from the table's first row "
                        f"({'; '.join(parts) or 'different fields'}); nothing was changed")


def row_label(table: str, row_no: int | None, line_no: int | None) -> str:
    label = f"table {table} row {row_no}" if row_no else f"table {table}"
    return f"{label} (line {line_no})" if line_no else label


def plan_table(table: Table, first_row: Any, *, line_no: int | None,
               allow_schema_mismatch: bool) -> TablePlan:
    """Match the first row's keys (camelCase or snake_case) to the table's columns.

    A field with no column, or a column with no field, is an error unless the schema
    mismatch is allowed; then the field is dropped / the column gets its default, and both
    are reported. Generated columns are always skipped (the database computes them).
    """
    if not isinstance(first_row, dict):
        raise OpsError(f"{row_label(table.name, 1, line_no)}: expected an object of "
                       f"field -> value, got {type(first_row).__name__}; nothing was changed")
    by_key = key_to_column(table.column_names)
    generated = {c.name for c in table.columns if c.generated}
    keys: list[str] = []
    columns: list[str] = []
    dropped: list[str] = []
    for key in first_row:
        column = by_key.get(key)
        if column is None:
            dropped.append(key)
        elif column in generated:
            continue
        elif column in columns:
            raise OpsError(f"{row_label(table.name, 1, line_no)}: fields {key!r} and "
                           f"{keys[columns.index(column)]!r} both name column {column}; "
                           "nothing was changed")
        else:
            keys.append(key)
            columns.append(column)
    defaulted = [c.name for c in table.writable_columns if c.name not in columns]
    if not allow_schema_mismatch and (dropped or defaulted):
        if dropped:
            problem = (f"unknown column(s) {', '.join(dropped)} (the database's {table.name} "
                       "has no such column)")
        else:
            problem = f"no value for column(s) {', '.join(defaulted)}"
        raise OpsError(
            f"table {table.name}: {problem}; nothing was changed",
            hint="The backup was made from a different schema. Bring the database to the "
            "backup's revision, or pass --allow-schema-mismatch to load the columns both have "
            "(others get their defaults).",
        )
    return TablePlan(table, tuple(keys), tuple(columns), len(first_row), dropped, defaulted)
