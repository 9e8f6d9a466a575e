"""How a backup's rows map onto a live table: which JSON key feeds which column, and how each
value becomes what COPY expects.

Values arrive as json.loads made them (Decimal for non-integers, so nothing is rounded):
strings, numbers and booleans go to COPY as they are, lists become PostgreSQL arrays, and
json/jsonb values are serialised back to JSON text (keeping Decimal digits such as `22.30`).
`null` is SQL NULL; a json value that is JSON null is named in the row's JSON_NULL_KEY field
(see ops.backup.format) and restored as JSON null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

import orjson

from ops.backup.deep_json import RawJson
from ops.backup.format import JSON_NULL_KEY, key_to_column
from ops.core.catalog import Column, Table
from ops.core.errors import OpsError
from ops.core.limits import summarize
from ops.core.output import suggest_flag

# json_text lets the C encoder do the work and marks each Decimal so its exact text can be
# put back afterwards; the pure-Python path is the fallback when a string holds the marker.
_MARK = "\ue000"
_MARKED = re.compile('"\ue000([^"\ue000]*)\ue000"')
_decimals_seen: list[Decimal] = []


def _mark_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        _decimals_seen.append(value)
        return f"{_MARK}{value}{_MARK}"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                           default=_mark_decimal).encode


def json_text(value: Any) -> str:
    """JSON text for a parsed value, keeping Decimal digits exactly (22.30 stays 22.30); a
    value too deep to parse (RawJson) is its own text."""
    if type(value) is dict and not value:
        return "{}"
    if type(value) is RawJson:
        return value.text
    _decimals_seen.clear()
    text = _encode(value)
    if not _decimals_seen:
        return text
    if text.count(_MARK) != 2 * len(_decimals_seen):  # the data itself holds the marker
        return _exact_json_text(value)
    return _MARKED.sub(r"\1", text)


def _exact_json_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(k)}:{_exact_json_text(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_exact_json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _jsonb_text(value: Any) -> str:
    """JSON text for a jsonb value the fast parser read (so no Decimal, unless the row had
    to be parsed exactly): orjson's, in C. jsonb keeps values, not text, so any encoding of
    the same value restores the same; `json` columns keep json_text's exact one."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a Decimal or an integer beyond 64 bits
        return json_text(value)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _json_elements(value: Any) -> Any:
    """A json[]/jsonb[] array: each element to JSON text.

    One-dimensional: a nested list is a JSON array element (row_to_json cannot tell it from
    a second dimension, and multi-dimensional jsonb arrays are vanishingly rare).
    """
    if type(value) is RawJson:
        value = value.elements()
    if not isinstance(value, list):
        return value  # not an array: COPY reports it against the row
    return [None if v is None else json_text(v) for v in value]


def _array_literal(value: Any) -> Any:
    """A list of strings as a PostgreSQL array literal (several times faster than the
    generic list adapter); anything else - numbers, nested lists - is left to psycopg."""
    if type(value) is not list:
        return value
    parts = []
    for item in value:
        if type(item) is str:
            parts.append('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif item is None:
            parts.append("NULL")
        else:
            return value
    return "{" + ",".join(parts) + "}"


def _converter(column: Column, as_text: bool) -> Callable[[Any], Any] | None:
    """How one column's parsed JSON value becomes a COPY value (None: as it is).

    `as_text`: the file holds the column's exact text (a `json` column), not its value.
    """
    array = column.is_array
    if column.json_type and not as_text:
        return _json_elements if array else json_text
    return _array_literal if array else None


_FLOAT_SAFE = re.compile(r"^(real|double precision|smallint|integer|bigint|"
                         r"numeric\((\d+)(,\d+)?\))$")


_NUMERIC_PREFIXES = ("numeric", "real", "double precision", "smallint", "integer", "bigint")
_FLOAT_TYPES = ("real", "double precision")


def float_safe(column: Column) -> bool:
    """Whether a value parsed as float still restores exactly into this column: floats and
    integers, and numeric of at most 15 digits (every such decimal is its float's repr)."""
    match = _FLOAT_SAFE.match(column.type)
    return match is not None and (match[2] is None or int(match[2]) <= 15)


def _has_float(value: Any) -> bool:
    """Whether a parsed JSON value holds a float anywhere (type scans run in C; a walk with
    its own stack, so any depth)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return kind is float
    pending = [value]
    while pending:
        node = pending.pop()
        items = node.values() if type(node) is dict else node
        kinds = set(map(type, items))
        if float in kinds:
            return True
        if dict in kinds or list in kinds:
            pending.extend(v for v in items if type(v) is dict or type(v) is list)
    return False


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
    json_text: frozenset[str] = frozenset()  # keys holding a json column's exact text
    _convert: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
    _fast_convert: tuple[tuple[int, Callable[[Any], Any]], ...] = ()  # rows the fast parser read
    # the values where a float would lose digits
    _exact_scalars: Callable[[Any], tuple[Any, ...]] = tuple
    _exact_json: tuple[int, ...] = ()  # json/jsonb and numeric arrays: walked for floats
    _float_zeros: tuple[int, ...] = ()  # float columns: a 0 may have been -0
    _key_index: dict[str, int] = field(default_factory=dict)  # json column key -> position

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.table.columns}
        converters = ((i, _converter(by_name[c], self.keys[i] in self.json_text))
                      for i, c in enumerate(self.columns))
        self._convert = tuple((i, f) for i, f in converters if f is not None)
        self._fast_convert = tuple(
            (i, _jsonb_text if f is json_text and by_name[self.columns[i]].json_type == "jsonb"
             else f) for i, f in self._convert)
        # Only json and numeric-typed values can hold non-integer numbers in a file that
        # row_to_json wrote (text, dates, uuids... are strings): those are worth checking.
        types = [by_name[c].type for c in self.columns]
        unsafe = [i for i, c in enumerate(self.columns) if not float_safe(by_name[c])
                  and (by_name[c].json_type or types[i].startswith(_NUMERIC_PREFIXES))]
        self._exact_json = tuple(i for i in unsafe
                                 if by_name[self.columns[i]].json_type
                                 or types[i].endswith("[]"))
        self._float_zeros = tuple(i for i, t in enumerate(types)
                                  if t.removesuffix("[]") in _FLOAT_TYPES)
        scalars = [i for i in unsafe if i not in self._exact_json]
        if scalars:
            pick = itemgetter(*scalars)
            self._exact_scalars = (lambda v: (pick(v),)) if len(scalars) == 1 else pick
        else:
            self._exact_scalars = lambda v: ()
        json_columns = {c for c in self.columns if by_name[c].json_type}
        self._key_index = {k: i for i, (k, c) in enumerate(zip(self.keys, self.columns,
                                                               strict=True))
                           if c in json_columns}
        getter = itemgetter(*self.keys) if self.keys else (lambda row: ())
        self._get: Callable[[Any], tuple[Any, ...]]
        if len(self.keys) == 1:
            self._get = lambda row: (getter(row),)
        else:
            self._get = getter

    def values(self, row: Any, row_no: int, line_no: int | None,
               exact: Callable[[], Any] | None = None) -> tuple[Any, ...] | list[Any]:
        """The COPY values for one row; bad shapes raise an OpsError naming the row.

        `exact` re-parses the row with Decimal numbers; it is called when the row came from
        the fast parser and a float sits where it could lose digits (jsonb 22.30).
        """
        if type(row) is not dict or len(row) != self.field_count:
            if type(row) is dict and JSON_NULL_KEY in row:
                return self._with_json_nulls(row, row_no, line_no, exact)
            raise self.row_error(row, row_no, line_no)
        try:
            values = self._get(row)
        except KeyError:
            raise self.row_error(row, row_no, line_no) from None
        convert = self._convert
        if exact is not None:
            convert = self._fast_convert
            if float in map(type, self._exact_scalars(values)):
                return self.values(exact(), row_no, line_no)
            for i in self._exact_json:
                if _has_float(values[i]):
                    return self.values(exact(), row_no, line_no)
            for i in self._float_zeros:  # the fast parser reads -0 as the integer 0
                if values[i] == 0 or type(values[i]) is list and 0 in values[i]:
                    return self.values(exact(), row_no, line_no)
        if convert:
            converted = list(values)
            for i, to_copy in convert:
                if converted[i] is not None:
                    converted[i] = to_copy(converted[i])
            return converted
        return values

    def _with_json_nulls(self, row: dict[str, Any], row_no: int, line_no: int | None,
                         exact: Callable[[], Any] | None) -> list[Any]:
        """The values of a row whose JSON_NULL_KEY names json values that are JSON null."""
        marks = row[JSON_NULL_KEY]
        rest = {k: v for k, v in row.items() if k != JSON_NULL_KEY}
        values = list(self.values(rest, row_no, line_no, exact and (lambda: {
            k: v for k, v in exact().items() if k != JSON_NULL_KEY})))
        where = row_label(self.table.name, row_no, line_no)
        if not isinstance(marks, dict):
            raise OpsError(f"{where}: {JSON_NULL_KEY} is not an object; nothing was changed")
        for key, mark in marks.items():
            index = self._key_index.get(key)
            if index is None:  # a column this database does not load (schema mismatch)
                continue
            if mark is True and values[index] is None:
                values[index] = "null"
            elif isinstance(mark, list) and isinstance(values[index], list) and all(
                    type(i) is int and 0 < i <= len(values[index]) for i in mark):
                for i in mark:
                    values[index][i - 1] = "null"
            else:
                raise OpsError(f"{where}: {JSON_NULL_KEY} names {key!r} wrongly; nothing was "
                               "changed")
        return values

    def row_error(self, row: Any, row_no: int, line_no: int | None) -> OpsError:
        where = row_label(self.table.name, row_no, line_no)
        if not isinstance(row, dict):
            return OpsError(f"{where}: expected an object of field -> value, got "
                            f"{type(row).__name__}; nothing was changed")
        missing = sorted(set(self.keys) - set(row))
        extra = sorted(set(row) - set(self.keys))
        parts = ([f"missing {summarize(missing)}"] if missing else []) + \
            ([f"unexpected {summarize(extra)}"] if extra else [])
        return OpsError(f"{where}: its fields differ from the table's first row "
                        f"({'; '.join(parts) or 'different fields'}); nothing was changed")


def row_label(table: str, row_no: int | None, line_no: int | None) -> str:
    label = f"table {table} row {row_no}" if row_no else f"table {table}"
    return f"{label} (line {line_no})" if line_no else label


def plan_table(table: Table, first_row: Any, *, line_no: int | None,
               allow_schema_mismatch: bool, json_text: frozenset[str] = frozenset()
               ) -> TablePlan:
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
        if key == JSON_NULL_KEY:
            continue
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
            problem = (f"unknown column(s) {summarize(dropped)} (the database's {table.name} "
                       "has no such column)")
        else:
            problem = f"no value for column(s) {summarize(defaulted)}"
        raise OpsError(
            f"table {table.name}: {problem}; nothing was changed",
            hint="The backup was made from a different schema. Bring the database to the "
            f"backup's revision, or load the columns both have (others get their defaults): "
            f"{suggest_flag('--allow-schema-mismatch')}.",
        )
    fields = len(first_row) - (JSON_NULL_KEY in first_row)
    return TablePlan(table, tuple(keys), tuple(columns), fields, dropped, defaulted,
                     json_text)
