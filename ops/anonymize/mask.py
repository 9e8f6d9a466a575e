"""Anonymizing rows as a backup streams them: the key, and one row transform per table.

A backup hands each row over as two JSON texts from PostgreSQL: the kept columns' object,
exactly as a plain backup writes it (so their values are never re-encoded: numerics keep
their digits), and an array of the values to transform. The transform appends the fakes to
the object, so the masked fields come last in each row; readers look fields up by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import psycopg

from ops.anonymize.policy import STRING_TRANSFORMERS, Policy, Rule, check_policy
from ops.anonymize.transformers import Keyed, UniqueFakes, cached, shift_date
from ops.core.catalog import Table
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.guard import production_reasons

# Published on purpose, like the sample password: anyone holding the key can test guesses
# ("is alice@corp.com in here?") against the fakes, so it serves development data only.
DEVELOPMENT_SALT = "tasklets-development-anonymize-salt"
MIN_SALT_CHARS = 16
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

Fake = Callable[[Any, int], Any]  # (value, the row's date shift) -> fake


def anonymize_key(settings: Settings, conn: psycopg.Connection) -> bytes:
    """ANONYMIZE_SALT as the HMAC key; the development default only for a development target."""
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
        return DEVELOPMENT_SALT.encode()
    if len(salt) < MIN_SALT_CHARS or (reasons and salt == DEVELOPMENT_SALT):
        raise OpsError(f"ANONYMIZE_SALT is too weak ({len(salt)} characters"
                       f"{', the published development value' if salt == DEVELOPMENT_SALT else ''}"
                       "); nothing was written",
                       hint=f"Use a secret of at least {MIN_SALT_CHARS} characters, e.g. from "
                       f"`{GENERATE}`.")
    return salt.encode()


class _Inexact(Exception):
    """A float in a json value: the row is parsed again with exact numbers."""


def _exact_int(text: str) -> int | Decimal:
    return int(text) if len(text) < 19 else Decimal(text)  # orjson writes int64 only


_EXACT = json.JSONDecoder(parse_float=Decimal, parse_int=_exact_int)


def _exact_loads(text: bytes | memoryview) -> Any:
    return _EXACT.decode(bytes(text).decode())


def _number_text(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_number_text)


class JsonMask:
    """A `json` rule: transformers by dotted key path (arrays add no step); `others` for text
    found anywhere else. `null` and `constant` replace the value at their path, the text
    transformers every string beneath it."""

    def __init__(self, paths: dict[str, tuple[Callable[[Any], Any], bool]],
                 others: Callable[[str], str] | None, text_column: bool) -> None:
        self.paths = paths  # path -> (transform, replaces the whole value?)
        self.others = others
        self.text_column = text_column  # a `json` column: the value is its text

    def __call__(self, value: Any, days: int) -> Any:
        if self.text_column:
            return _dumps(self.walk(_exact_loads(value.encode()), "")).decode()
        return self.walk(value, "")

    def walk(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                here = f"{path}.{key}" if path else key
                rule = self.paths.get(here)
                if rule is None:
                    out[key] = self.walk(item, here)
                else:
                    fake, whole = rule
                    out[key] = fake(item) if whole else _each_string(item, fake)
            return out
        if isinstance(value, list):
            return [self.walk(item, path) for item in value]
        return _each_string(value, self.others)


def _each_string(value: Any, fake: Callable[[str], str] | None) -> Any:
    if isinstance(value, str):
        return fake(value) if fake else value
    if isinstance(value, dict):
        return {k: _each_string(v, fake) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, fake) for v in value]
    if type(value) is float:
        raise _Inexact
    return value


class TableMask:
    """The row transform of one table: `columns` are the ones it replaces, `row_key` the
    columns (the primary key) that pick each row's date shift; both in the array the COPY
    hands over, row_key first."""

    def __init__(self, table: Table, fakes: list[tuple[str, str, Fake]],
                 row_days: Callable[[bytes], int] | None) -> None:
        self.table = table.name
        self.columns = tuple(column for column, _, _ in fakes)
        self._fakes = [(key, fake) for _, key, fake in fakes]
        self._row_days = row_days
        self.row_key = table.primary_key if row_days else ()

    def __call__(self, kept: bytes | memoryview, masked: bytes | memoryview) -> bytes:
        """The row line: the kept object with the fakes appended."""
        try:
            tail = self._fields(kept, orjson.loads(masked))
        except _Inexact:
            tail = self._fields(kept, _exact_loads(masked))
        if len(kept) <= 2:  # no kept column at all: `{}`
            return tail
        return b"".join((kept[:-1], b",", tail[1:]))

    def _fields(self, kept: bytes | memoryview, values: list) -> bytes:
        days = 0
        if self._row_days is not None:  # no primary key: the kept fields tell rows apart
            n = len(self.row_key)
            days = self._row_days(_dumps(values[:n]) if n else bytes(kept))
            values = values[n:]
        return _dumps({key: None if value is None else fake(value, days)
                       for (key, fake), value in zip(self._fakes, values, strict=True)})


class Anonymizer:
    """One run's fakes: the policy, checked against the live schema, applied with one key."""

    def __init__(self, policy: Policy, key: bytes) -> None:
        self.policy = policy
        self.keyed = Keyed(key)
        self._password: str | None = None

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
                fake = self._fake(rule, column.name in unique_columns,
                                  column.json_type == "json")
                fakes.append((column.name, json_keys[column.name], fake))
                if rule.transformer == "date_shift":
                    days = rule.days
            if fakes:
                masks[table.name] = TableMask(
                    table, fakes, partial(self.keyed.row_days, days=days) if days else None)
        return masks

    def _fake(self, rule: Rule, unique: bool, text_column: bool) -> Fake:
        name = rule.transformer
        if name in STRING_TRANSFORMERS:
            string = self._string_fake(rule, unique)
            return lambda value, days: _each_string(value, string)
        if name == "null":
            return lambda value, days: None
        if name == "constant":
            constant = rule.options["value"]
            return lambda value, days: constant
        if name == "password":
            if self._password is None:
                self._password = self.keyed.password()
            password = self._password
            return lambda value, days: password
        if name == "date_shift":
            return shift_date
        paths = {path: (self._json_key_fake(sub), sub.transformer in ("null", "constant"))
                 for path, sub in rule.keys.items()}
        others = rule.options.get("others", "keep")
        return JsonMask(paths, None if others == "keep" else self._string_fake(Rule(others),
                                                                                 False),
                        text_column)

    def _json_key_fake(self, rule: Rule) -> Callable[[Any], Any]:
        if rule.transformer == "null":
            return lambda value: None
        if rule.transformer == "constant":
            constant = rule.options["value"]
            return lambda value: constant
        if rule.transformer == "keep":
            return lambda value: value
        return self._string_fake(rule, False)

    def _string_fake(self, rule: Rule, unique: bool) -> Callable[[str], str]:
        make = getattr(self.keyed, rule.transformer)
        if "domain" in rule.options:
            make = partial(make, domain=rule.options["domain"])
        fake = cached(make)
        return UniqueFakes(fake) if unique else fake
