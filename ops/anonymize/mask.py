"""Anonymizing rows as a backup streams them: the key, and one row transform per table.

A backup hands each row over as two JSON texts from PostgreSQL: the kept columns' object,
exactly as a plain backup writes it (so their values are never re-encoded: numerics keep
their digits), and an array of the values to transform. The transform appends the fakes to
the object, so the masked fields come last in each row; readers look fields up by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

import orjson
import psycopg

from ops.anonymize.policy import (
    DEFAULT_JSON_OTHERS,
    STRING_TRANSFORMERS,
    Policy,
    Rule,
    check_policy,
)
from ops.anonymize.transformers import (
    CACHE_SIZE,
    RESERVED_DOMAIN,
    Keyed,
    UniqueFakes,
    shift_date,
)
from ops.core.catalog import Column, Table
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.guard import production_reasons
from ops.core.output import SILENT, Reporter

# Published on purpose, like the sample password: anyone holding the key can test guesses
# ("is alice@corp.com in here?") against the fakes, so it serves development data only.
DEVELOPMENT_SALT = "tasklets-development-anonymize-salt"
MIN_SALT_CHARS = 16
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_PUBLIC_SALT_WARNING = (
    "⚠️  ANONYMIZE_SALT is the published development value: anyone can test whether an email "
    "is in this snapshot. Set one of your own in .env (make writes a generated one into a new "
    f".env), e.g. from `{GENERATE}`.")

Fake = Callable[..., Any]  # value -> fake; date_shift: (value, the row's shift in days)


def anonymize_key(settings: Settings, conn: psycopg.Connection,
                  report: Reporter = SILENT) -> bytes:
    """ANONYMIZE_SALT as the HMAC key; the development default only for a development target,
    and with a warning: anyone can test guesses against fakes made with it."""
    salt = settings.anonymize_salt
    reasons = production_reasons(conn, settings)
    if settings.app_env != "development" and not reasons:
        reasons = [f"APP_ENV={settings.app_env}"]
    if not salt:
        if reasons:
            raise OpsError(f"ANONYMIZE_SALT is not set, and this is not a development target "
                           f"({'; '.join(reasons)}); nothing was written",
                           hint=f"Set ANONYMIZE_SALT to a secret of at least {MIN_SALT_CHARS} "
                           f"characters, e.g. from `{GENERATE}`, and keep it secret.")
        report.warn(_PUBLIC_SALT_WARNING)
        return DEVELOPMENT_SALT.encode()
    if len(salt) < MIN_SALT_CHARS or (reasons and salt == DEVELOPMENT_SALT):
        raise OpsError(f"ANONYMIZE_SALT is too weak ({len(salt)} characters"
                       f"{', the published development value' if salt == DEVELOPMENT_SALT else ''}"
                       "); nothing was written",
                       hint=f"Use a secret of at least {MIN_SALT_CHARS} characters, e.g. from "
                       f"`{GENERATE}`.")
    if salt == DEVELOPMENT_SALT:
        report.warn(_PUBLIC_SALT_WARNING)
    return salt.encode()


# orjson reads non-integers (and integers past 64 bits) as floats, which would lose digits
# (1.50 -> 1.5); JSON text that may hold one is read with exact decimals instead.
_INEXACT = re.compile(r"[0-9][.eE]|[0-9]{19}")


def _exact_int(text: str) -> int | Decimal:
    return int(text) if len(text) < 19 else Decimal(text)  # orjson writes int64 only


_EXACT = json.JSONDecoder(parse_float=Decimal, parse_int=_exact_int)


def _number_text(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_number_text)


Leaf = tuple[Callable[[Any], Any], bool]  # (fake, replaces the whole value?)


class JsonMask:
    """A `json` rule: transformers by dotted key path (arrays add no step); `others` for text
    found anywhere else. `null` and `constant` replace the value at their path, the text
    transformers every string beneath it.

    The value arrives as its JSON text; one without any string (no key, no text: `{}`,
    `[1, 2]`, `null`) has nothing to transform and goes out untouched, unparsed.
    """

    def __init__(self, paths: dict[str, Leaf], others: Callable[[str], str],
                 text_column: bool) -> None:
        self.tree: dict[str, Any] = {}  # key -> Leaf, or the subtree below it
        for path in sorted(paths, key=lambda p: p.count(".")):
            *parents, last = path.split(".")
            node = self.tree
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):  # a shorter path already covers it
                    break
            else:
                node[last] = paths[path]
        self.others = others
        self.text_column = text_column  # a `json` column: the file holds its text as a string

    def __call__(self, text: str) -> bytes:
        """The value's JSON for the file (a `json` column's: its text, as a JSON string)."""
        if '"' not in text:
            out = text.encode()
        else:
            value = _EXACT.decode(text) if _INEXACT.search(text) else orjson.loads(text)
            out = _dumps(self.walk(value, self.tree))
        return orjson.dumps(out.decode()) if self.text_column else out

    def walk(self, value: Any, tree: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                node = tree.get(key)
                if node is None:
                    out[key] = self.rest(item)
                elif isinstance(node, dict):
                    out[key] = self.walk(item, node)
                else:
                    fake, whole = node
                    out[key] = fake(item) if whole else _each_string(item, fake)
            return out
        if isinstance(value, list):
            return [self.walk(item, tree) for item in value]
        return self.rest(value)

    def rest(self, value: Any) -> Any:
        return _each_string(value, self.others)


def _each_scalar(value: Any, fake: Callable[[str], str]) -> Any:
    """Every string and number beneath `value` faked (as a string); flags and nulls stay."""
    if isinstance(value, dict):
        return {k: _each_scalar(v, fake) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_scalar(v, fake) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return fake(value if isinstance(value, str) else _dumps(value).decode())


def _each_string(value: Any, fake: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fake(value)
    if isinstance(value, dict):
        return {k: _each_string(v, fake) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, fake) for v in value]
    return value


class TableMask:
    """The row transform of one table. The COPY hands over, per row, the kept columns' object
    and a JSON array: the `row_key` columns (the primary key, when dates shift: it picks the
    row's shift), then the `columns` to replace (those in `as_text` as their JSON text).
    Each fake returns its value's JSON, so the row is put together by joining bytes."""

    def __init__(self, table: Table, fakes: list[tuple[Column, str, Fake]],
                 row_days: Callable[[bytes], int] | None) -> None:
        self.table = table.name
        self.columns = tuple(column.name for column, _, _ in fakes)
        self.as_text = frozenset(column.name for column, _, fake in fakes
                                 if isinstance(fake, JsonMask) and column.json_type == "jsonb")
        self._fakes = [(b"," + orjson.dumps(key) + b":", fake, isinstance(fake, DateShift))
                       for _, key, fake in fakes]
        self._row_days = row_days
        self.row_key = table.primary_key if row_days else ()

    def __call__(self, kept: bytes | memoryview, masked: bytes | memoryview) -> bytes:
        """The row line: the kept object with the fakes appended."""
        values = orjson.loads(masked)  # text, dates, json rules' text: nothing to round
        parts = [kept[:-1]]
        if self._row_days is None:
            for (prefix, fake, _), value in zip(self._fakes, values, strict=True):
                parts += (prefix, b"null" if value is None else fake(value))
        else:  # no primary key: the kept fields tell rows apart
            n = len(self.row_key)
            days = self._row_days(_dumps(values[:n]) if n else bytes(kept))
            for (prefix, fake, shifts), value in zip(self._fakes, values[n:], strict=True):
                parts += (prefix, b"null" if value is None else fake(value, days) if shifts
                          else fake(value))
        parts.append(b"}")
        if len(kept) <= 2:  # no kept column at all: `{` then the fakes without a comma
            parts[1] = parts[1][1:]
        return b"".join(parts)


class DateShift:
    """A date_shift column: the date moved by the row's shift, as JSON."""

    def __call__(self, value: str, days: int) -> bytes:
        shifted: str = shift_date(value, days)  # a str given a str
        return b'"' + shifted.encode() + b'"'


def _json_string(fake: Callable[[str], str]) -> Callable[[str], bytes]:
    """A text fake returning JSON: the fakes are plain ASCII (letters, digits, `.@+-/: `),
    nothing to escape."""
    return lambda value: b'"' + fake(value).encode() + b'"'


def _constant(value: Any) -> Callable[[Any], bytes]:
    encoded = orjson.dumps(value)
    return lambda _: encoded


class Anonymizer:
    """One run's fakes: the policy, checked against the live schema, applied with one key."""

    def __init__(self, policy: Policy, key: bytes) -> None:
        self.policy = policy
        self.keyed = Keyed(key)
        self._password: str | None = None

    @property
    def fake_domains(self) -> set[str]:
        """The domains the fakes' emails and URLs use: found in a snapshot, they are fakes."""
        rules = [rule for columns in self.policy.tables.values() for rule in columns.values()]
        rules += [sub for rule in rules for sub in rule.keys.values()]
        return {RESERVED_DOMAIN, *(str(r.options["domain"]).lower() for r in rules
                                   if "domain" in r.options)}

    @property
    def meta(self) -> dict[str, Any]:
        """What the backup's meta records: never the key, nor anything derived from it."""
        return {"anonymized": True, "anonymizePolicySha256": self.policy.sha256}

    def masks(self, tables: list[Table], everything: list[Table],
              unique: dict[str, list[tuple[str, tuple[str, ...]]]],
              keys: Callable[[Table], dict[str, str]]) -> dict[str, TableMask]:
        """Row transforms for `tables` (those with something to replace), after checking the
        policy against `everything` the schema has. `keys(table)` maps columns to JSON keys."""
        check_policy(self.policy, everything)
        masks = {}
        for table in tables:
            unique_columns = {c for _, columns in unique.get(table.name, []) for c in columns}
            json_keys = keys(table)
            fakes, days = [], 0
            for column in table.columns:
                rule = self.policy.rule(table.name, column.name)
                if rule.transformer == "keep":
                    continue
                fake = self._fake(rule, column, column.name in unique_columns)
                fakes.append((column, json_keys[column.name], fake))
                if rule.transformer == "date_shift":
                    days = rule.days
            if fakes:
                masks[table.name] = TableMask(
                    table, fakes, partial(self.keyed.row_days, days=days) if days else None)
        return masks

    def _fake(self, rule: Rule, column: Column, unique: bool) -> Fake:
        """The column's fake: value -> its fake's JSON."""
        name = rule.transformer
        if name in STRING_TRANSFORMERS:
            string = self._string_fake(rule, unique)
            if column.is_array:
                return lambda value: orjson.dumps(_each_string(value, string))
            if rule.transformer == "text" and not unique:
                return self.keyed.text_json
            return _json_string(string)
        if name == "date_shift":
            return DateShift()
        if name == "json":
            others = rule.options.get("others", DEFAULT_JSON_OTHERS)
            return JsonMask({path: self._json_leaf(sub) for path, sub in rule.keys.items()},
                            self._string_fake(Rule(others), False), column.json_type == "json")
        return _constant(self._json_leaf(rule)[0](None))  # null, constant, password

    def _json_leaf(self, rule: Rule) -> Leaf:
        name = rule.transformer
        if name == "null":
            return (lambda value: None), True
        if name == "constant":
            constant = rule.options["value"]
            return (lambda value: constant), True
        if name == "password":
            if self._password is None:
                self._password = self.keyed.password()
            password = self._password
            return (lambda value: password), True
        if name == "keep":
            return (lambda value: value), True
        if name == "identifier":  # numbers name people too (an employee number as a label)
            fake = self._string_fake(rule, False)
            return partial(_each_scalar, fake=fake), True
        return self._string_fake(rule, False), False

    def _string_fake(self, rule: Rule, unique: bool) -> Callable[..., str]:
        make = getattr(self.keyed, rule.transformer)
        if "domain" in rule.options:
            make = partial(make, domain=rule.options["domain"])
        if rule.transformer != "text":  # long texts rarely repeat: not worth their memory
            make = lru_cache(maxsize=CACHE_SIZE)(make)
        return UniqueFakes(make) if unique else make
