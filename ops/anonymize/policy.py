"""The anonymization policy (`anonymize.toml`): every column of every app table, classified.

    [users]
    email = "email"
    last_login_at = { transformer = "date_shift", days = 30 }
    metadata = { transformer = "json", keys = { "beads.owner" = "person_name" } }

A table per app table, a key per column: `keep` or a transformer (a name, or an inline table
with `transformer` and its options). The file is the only place a decision lives, so a column
the schema has and the policy lacks is refused, never guessed: a migration that adds one
fails `anonymize check` (and CI) until someone classifies it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ops.core.catalog import Column, Table, require_schema
from ops.core.config import PROJECT_ROOT
from ops.core.errors import NotFound, OpsError
from ops.core.limits import summarize

DEFAULT_POLICY = PROJECT_ROOT / "anonymize.toml"

# Transformers that write text, and may only replace text (text, varchar, their arrays).
# `identifier` is `hash` for values that may be anything naming someone (an external id
# holding an email, a repository path with a user name): inside JSON it replaces numbers too.
STRING_TRANSFORMERS = ("email", "person_name", "company_name", "phone", "url", "text", "hash",
                       "identifier")
TRANSFORMERS = ("keep", *STRING_TRANSFORMERS, "null", "constant", "password", "date_shift",
                "json")
# What a `json` rule may do to the value at one of its paths.
JSON_KEY_TRANSFORMERS = ("keep", *STRING_TRANSFORMERS, "null", "constant")
OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "email": {"domain": str},
    "url": {"domain": str},
    "constant": {"value": (str, int, float, bool)},
    "date_shift": {"days": int},
    "json": {"keys": dict, "others": str},
}
REQUIRED = {"constant": ("value",)}
# What a json rule does to strings no key rule reaches: JSON columns hold whatever the API or
# an import was given (emails, names), so nothing in them is kept unless a key says so.
DEFAULT_JSON_OTHERS = "text"
DEFAULT_SHIFT_DAYS = 30
MAX_SHIFT_DAYS = 3650
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_TEXT_TYPES = ("text", "character varying", "character", "citext", "name")
_DATE_TYPES = ("date", "timestamp with time zone", "timestamp without time zone")


@dataclass(frozen=True)
class Rule:
    """What to do with one column (or, inside a json rule, one path)."""

    transformer: str
    options: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, Rule] = field(default_factory=dict)  # json: path -> rule

    @property
    def days(self) -> int:
        days: int = self.options.get("days", DEFAULT_SHIFT_DAYS)  # checked by _rule
        return days


@dataclass(frozen=True)
class Policy:
    path: Path
    sha256: str
    tables: dict[str, dict[str, Rule]]

    def rule(self, table: str, column: str) -> Rule:
        return self.tables[table][column]


def _hint(path: Path) -> str:
    return f"Fix {path} (docs/how-to/anonymized-snapshots.md describes its format)."


def load_policy(path: Path | None = None) -> Policy:
    """Read and check a policy file on its own (names, transformers, options)."""
    path = path or DEFAULT_POLICY
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"anonymization policy {path} not found",
                       hint="Pass --policy PATH, or restore anonymize.toml at the project "
                       "root from git.") from None
    except OSError as exc:
        raise OpsError(f"cannot read anonymization policy {path}: {exc.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OpsError(f"{path} is not valid TOML: {exc}", hint=_hint(path)) from None
    tables: dict[str, dict[str, Rule]] = {}
    for table, columns in document.items():
        if not isinstance(columns, dict):
            raise OpsError(f"{path}: {table!r} must be a table of columns ([{table}]), not a "
                           "value", hint=_hint(path))
        tables[table] = {column: _rule(path, f"{table}.{column}", spec, TRANSFORMERS)
                         for column, spec in columns.items()}
    return Policy(path, hashlib.sha256(raw).hexdigest(), tables)


def _rule(path: Path, where: str, spec: Any, allowed: tuple[str, ...]) -> Rule:
    options: dict[str, Any]
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("transformer"), str):
        name, options = spec["transformer"], {k: v for k, v in spec.items()
                                              if k != "transformer"}
    else:
        raise OpsError(f"{path}: {where} must be a transformer name or "
                       "{ transformer = \"...\", ... }", hint=_hint(path))
    if name not in allowed:
        raise OpsError(f"{path}: {where}: unknown transformer {name!r}",
                       hint=f"Use one of: {', '.join(allowed)}.")
    known = OPTIONS.get(name, {})
    for option, value in options.items():
        if option not in known:
            takes = f"takes {', '.join(known)}" if known else "takes no options"
            raise OpsError(f"{path}: {where}: {name} {takes}, not {option!r}",
                           hint=_hint(path))
        if not isinstance(value, known[option]) or (option == "days" and (
                # the isinstance above, with OPTIONS' int for days
                isinstance(value, bool) or not 1 <= cast(int, value) <= MAX_SHIFT_DAYS)):
            raise OpsError(f"{path}: {where}: {option} = {value!r} is not valid for {name}",
                           hint="days is a whole number from 1 to 3650; domain a string; "
                           "keys a table; others a transformer name.")
    domain = options.get("domain")
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise OpsError(f"{path}: {where}: domain = {domain!r} is not a domain name",
                       hint='Use a reserved one such as "example.test".')
    for option in REQUIRED.get(name, ()):
        if option not in options:
            raise OpsError(f"{path}: {where}: {name} needs {option} = ...", hint=_hint(path))
    keys: dict[str, Rule] = {}
    if name == "json":
        keys = {key: _rule(path, f"{where} key {key!r}", sub, JSON_KEY_TRANSFORMERS)
                for key, sub in options.pop("keys", {}).items()}
        others = options.get("others", DEFAULT_JSON_OTHERS)
        if others not in STRING_TRANSFORMERS:
            raise OpsError(f"{path}: {where}: others = {others!r} is not a text transformer "
                           "(JSON holds whatever it was given: every string no key rule "
                           "reaches is transformed)",
                           hint=f"Use one of: {', '.join(STRING_TRANSFORMERS)}; keep known-safe "
                           'keys by name: keys = { "tier" = "keep" }.')
    return Rule(name, options, keys)


@dataclass
class PolicyCheck:
    policy: Path
    sha256: str
    tables: int
    columns: int
    transformed: dict[str, dict[str, str]]  # table -> column -> transformer


def check_tables(policy: Policy, tables: list[Table]) -> PolicyCheck:
    """`anonymize check`: the policy against the live schema's tables."""
    require_schema(tables)
    check_policy(policy, tables)
    return PolicyCheck(policy.path, policy.sha256, len(tables),
                       sum(len(t.columns) for t in tables),
                       {t.name: masked for t in tables if (masked := {
                           c: r.transformer for c, r in policy.tables[t.name].items()
                           if r.transformer != "keep"})})


def key_columns(tables: list[Table]) -> dict[str, set[str]]:
    """Per table, the columns in a primary or foreign key, on either end of a reference."""
    keys = {t.name: set(t.primary_key) for t in tables}
    for t in tables:
        for fk in t.foreign_keys:
            keys[t.name].update(fk.columns)
            keys.setdefault(fk.ref_table, set()).update(fk.ref_columns)
    return keys


def check_policy(policy: Policy, tables: list[Table]) -> None:
    """Raise one line for the first problem between the policy and the live schema (every
    table of it: the check does not depend on which tables a backup picks)."""
    live = {t.name: t for t in tables}
    where = policy.path
    for table, columns in policy.tables.items():
        if table not in live:
            raise OpsError(f"{where} names table {table!r}, which the database does not have",
                           hint=f"Remove [{table}] from {where} (renamed or dropped?), or run "
                           "the migration that creates it.")
        names = set(live[table].column_names)
        unknown = sorted(c for c in columns if c not in names)
        if unknown:
            raise OpsError(f"{where} names column {table}.{unknown[0]}, which the database "
                           "does not have", hint=f"Remove it from [{table}] in {where}, or run "
                           "the migration that adds it.")
    missing = [f"{t.name}.{c.name}" for t in tables for c in t.columns
               if c.name not in policy.tables.get(t.name, {})]
    if missing:
        first_table, first_column = missing[0].split(".", 1)
        raise OpsError(f"{summarize(missing)} not classified in {where}: every column must be "
                       "kept or transformed; nothing was written",
                       hint=f"Add `{first_column} = \"keep\"` (or a transformer, with a comment "
                       f"saying why) under [{first_table}] in {where}.")
    keys = key_columns(tables)
    for live_table in tables:
        shifts: set[int] = set()
        for column in live_table.columns:
            rule = policy.rule(live_table.name, column.name)
            # a transformed key would break the references that keep the snapshot restorable
            _check_column(where, live_table.name, column, rule, keys.get(live_table.name, set()))
            if rule.transformer == "date_shift":
                shifts.add(rule.days)
        if len(shifts) > 1:
            raise OpsError(f"{where}: [{live_table.name}] shifts dates by {sorted(shifts)} days: "
                           "one row's dates move together, so use one days value per table",
                           hint=_hint(where))


def _check_column(where: Path, table: str, column: Column, rule: Rule, keys: set[str]) -> None:
    name = rule.transformer
    label = f"{table}.{column.name}"
    if name == "keep" and column.json_type is not None and column.name not in keys \
            and not column.generated:
        raise OpsError(f"{where}: {label} is {column.type}, which holds whatever it was given "
                       "(the API's metadata, an import's raw fields): keep is not possible",
                       hint=f'Use {column.name} = {{ transformer = "json", keys = {{ "tier" = '
                       '"keep" }} }}: keys name what stays, every other string is transformed '
                       f"(others = {DEFAULT_JSON_OTHERS!r} by default).")
    if name == "keep":
        return
    if column.name in keys:
        raise OpsError(f"{where}: {label} is part of a primary or foreign key, which is never "
                       f"transformed ({name})",
                       hint="Use keep: ids identify nobody, and changing them breaks references.")
    if column.generated:
        raise OpsError(f"{where}: {label} is a generated column: only keep is possible "
                       "(PostgreSQL computes it)", hint=_hint(where))
    base = column.type.removesuffix("[]").split("(")[0]
    wanted = ("text" if name in STRING_TRANSFORMERS or name == "password" else
              "date" if name == "date_shift" else "json" if name == "json" else None)
    fits = {"text": base in _TEXT_TYPES, "date": base in _DATE_TYPES and not column.is_array,
            "json": column.json_type is not None and not column.is_array, None: True}[wanted]
    if not fits:
        kind: dict[str | None, str] = {"text": "a text", "date": "a date or timestamp",
                                       "json": "a json or jsonb"}
        raise OpsError(f"{where}: {label} is {column.type}: {name} needs {kind[wanted]} column",
                       hint=_hint(where))
    if name == "null" and not column.nullable:
        raise OpsError(f"{where}: {label} is NOT NULL, so null would not restore",
                       hint="Use constant (with a value) or another transformer.")
