"""A tenant's rows from a backup, staged in temporary tables before any live row is touched.

The file is read, parsed and filtered - the slow part - into one temporary table per app
table (the same columns and types, no constraints, dropped at commit) while everyone, that
tenant included, keeps working; the tenant is locked only for the short part that writes.
The staged rows are then what collisions, new ids and references are worked out on, with
set-based queries against small tables instead of the live ones.

Which rows are the tenant's follows ops.core.tenancy: `tenantId`, or, for tables placed
through a foreign key, the keys of the tenant's rows already read from the referenced table
(files list tables in foreign-key order, so those come first).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg import sql

from ops.backup.reader import BackupReader, Row, Section
from ops.core.catalog import APP_SCHEMA, Table
from ops.core.db import scalar
from ops.core.errors import BadBackup, NotFound, OpsError, UsageError
from ops.core.limits import summarize
from ops.core.output import Reporter, suggest, suggest_flag
from ops.core.slugs import free_slug, slugify
from ops.core.tenancy import TENANT_SLUG_COLUMN, Tenant, TenantScope, pick_tenant
from ops.restore.apply import (
    PROGRESS_EVERY,
    Options,
    copy_error,
    note_columns,
    skip_unknown_table,
)
from ops.restore.checks import serial_sequences
from ops.restore.plan import TablePlan, plan_table

if TYPE_CHECKING:  # tenant.py imports this module
    from ops.restore.tenant import TenantRestoreResult


@dataclass
class Stage:
    """One app table's staged rows: a temporary table with its writable columns."""

    table: Table
    ident: sql.Identifier
    columns: tuple[str, ...] = ()  # the columns the file fed: the load's column list
    rows: int = 0
    in_file: bool = False


def create_stages(conn: psycopg.Connection, tables: list[Table]) -> dict[str, Stage]:
    """An empty stage per table, in the order given (dependency order)."""
    stages: dict[str, Stage] = {}
    for index, table in enumerate(tables):
        ident = sql.Identifier("pg_temp", f"tenant_stage_{index}")
        conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            ident, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name),
                                                             sql.SQL(c.type))
                                      for c in table.writable_columns)))
        stages[table.name] = Stage(table, ident)
    return stages


def meta_tenant(meta: dict[str, Any] | None) -> Tenant | None:
    """The tenant a backup of one tenant holds, from its meta (None: any other backup);
    ValueError when meta names a tenant without a proper id and name."""
    found = (meta or {}).get("tenant")
    if found is None:
        return None
    try:
        slug = found.get("slug")
        return Tenant(int(found["id"]), str(found["name"]),
                      slug if isinstance(slug, str) else None)
    except (AttributeError, TypeError, KeyError, ValueError):
        raise ValueError("meta.tenant is not an object with id and name") from None


def tenant_in_meta(meta: dict[str, Any] | None, ref: str, name: str) -> Tenant | None:
    """The tenant a tenant backup holds (None for other backups); `ref` must name it."""
    try:
        tenant = meta_tenant(meta)
    except ValueError as exc:
        raise BadBackup(name, str(exc)) from None
    if tenant is None:
        return None
    if pick_tenant([tenant], ref) is None:
        same = suggest(f"restore {name} --tenant {tenant.id}")
        raise UsageError(
            f"{name} is a backup of tenant {tenant}, not of {ref!r}; nothing was changed",
            hint=f"Restore it as that tenant ({same}); to load its rows as another tenant: "
            f"{suggest_flag('--new-ids --rename NEW')}.")
    return tenant


def stage_backup(conn: psycopg.Connection, reader: BackupReader, scope: TenantScope,
                 stages: dict[str, Stage], ref: str, result: TenantRestoreResult,
                 options: Options,
                 report: Reporter) -> Tenant:
    """Stage the rows of the tenant `ref` names (a name or an id) from the whole file; returns
    the tenant as the file has it. Rows of other tenants are read and skipped."""
    tenant = tenant_in_meta(reader.tail_meta, ref, reader.ref.name)
    # Key values of the tenant's rows in the tables other tables are placed through.
    keys: dict[tuple[str, tuple[str, ...]], set[Any]] = {
        (p.via.ref_table, p.via.ref_columns): set()
        for p in scope.placements.values() if p.via is not None}
    read = 0
    for section in reader.sections():
        stage = stages.get(section.name)
        if stage is None:
            skip_unknown_table(section, result, options, report)
            continue
        stage.in_file = True
        first = next(section.rows, None)
        if first is None:
            if stage.table is scope.root and tenant is None:
                raise _not_in_backup(reader.ref.name, ref, [])
            continue
        plan = plan_table(stage.table, first[2], line_no=first[1],
                          allow_schema_mismatch=options.allow_schema_mismatch,
                          json_text=section.json_text)
        note_columns(plan, result, report)
        rows: Iterator[Row] = chain([first], section.rows)
        exact = section.exact if section.approximate else None
        if stage.table is scope.root:
            # The tenants table is small and the tenant must be found before any row is
            # staged: read it whole, each row exactly (Decimal digits kept) right away.
            listed = [(n, line, exact() if exact else value) for n, line, value in rows]
            tenant = _pick(listed, plan, scope, tenant, ref, reader.ref.name)
            rows, exact = iter(listed), None
        elif tenant is None:
            raise reader.error(f"table {section.name!r} comes before {scope.root.name!r}, so "
                               "its rows cannot be placed in a tenant")
        member = _membership(plan, scope, tenant, keys, reader.ref.name)
        collect = [(_key_getter(plan, columns, reader.ref.name), found)
                   for (name, columns), found in keys.items() if name == stage.table.name]
        _copy_members(conn, stage, section, plan, rows, exact, member, collect, report)
        read += section.count
        report.line(f"📥 {stage.table.name}: {stage.rows} rows of the tenant")
    if tenant is None:
        raise BadBackup(reader.ref.name, f"it has no {scope.root.name} table, so no tenant "
                        f"{ref!r}")
    if not stages[scope.root.name].rows:
        raise BadBackup(reader.ref.name, f"meta says it holds tenant {tenant} but its "
                        f"{scope.root.name} table has no row for it")
    result.other_rows_skipped = read - sum(s.rows for s in stages.values())
    return tenant


def _pick(rows: list[Row], plan: TablePlan, scope: TenantScope, expected: Tenant | None,
          ref: str, name: str) -> Tenant:
    """The tenant among the file's tenants rows: the one meta names, else the one `ref` does."""
    id_key = _key_getter(plan, scope.root.primary_key, name)
    name_key = _key_getter(plan, (scope.name_column,), name)
    slug_key = _key_getter(plan, (TENANT_SLUG_COLUMN,), name) \
        if TENANT_SLUG_COLUMN in plan.columns else lambda row: None
    listed = []
    for row_no, line_no, value in rows:
        try:
            slug = slug_key(value)
            listed.append(Tenant(id_key(value), str(name_key(value)),
                                 None if slug is None else str(slug)))
        except (KeyError, TypeError):
            plan.values(value, row_no, line_no)  # raises the error naming the row
    if expected is not None:  # meta's; the slug from its row where meta has none
        row = next((t for t in listed if t.id == expected.id), None)
        if expected.slug is None and row is not None:
            return replace(expected, slug=row.slug)
        return expected
    found = pick_tenant(listed, ref)
    if found is None:
        raise _not_in_backup(name, ref, listed)
    return found


def _not_in_backup(name: str, ref: str, listed: list[Tenant]) -> NotFound:
    return NotFound(
        f"backup {name} holds no tenant {ref!r} (it holds "
        f"{summarize([str(t) for t in listed]) or 'no tenants'}); nothing was changed",
        hint="Name the tenant by its exact name or id in that backup, or pick a backup "
        f"made while it existed ({suggest('backups')} lists them).")


def _key_getter(plan: TablePlan, columns: tuple[str, ...],
                name: str) -> Callable[[Any], Any]:
    """Reads the values of `columns` from a row as parsed (one value, or a tuple of them)."""
    key_of = dict(zip(plan.columns, plan.keys, strict=True))
    missing = [c for c in columns if c not in key_of]
    if missing:
        raise BadBackup(name, f"table {plan.table.name} has no field for "
                        f"{summarize(missing)}, so its rows cannot be placed in a tenant")
    keys = [key_of[c] for c in columns]
    if len(keys) == 1:
        key = keys[0]
        return lambda row: row[key]
    return lambda row: tuple(row[k] for k in keys)


def _membership(plan: TablePlan, scope: TenantScope, tenant: Tenant,
                keys: dict[tuple[str, tuple[str, ...]], set[Any]],
                backup_name: str) -> Callable[[Any], bool]:
    """Whether a parsed row of the plan's table belongs to `tenant`."""
    name = plan.table.name
    via = scope.via(name)
    value = _key_getter(plan, scope.membership_columns(name), backup_name)
    if via is None:
        tenant_id = tenant.id
        return lambda row: value(row) == tenant_id
    found = keys[(via.ref_table, via.ref_columns)]
    return lambda row: value(row) in found


def _copy_members(conn: psycopg.Connection, stage: Stage, section: Section, plan: TablePlan,
                  rows: Iterator[Row], exact: Callable[[], Any] | None,
                  member: Callable[[Any], bool],
                  collect: list[tuple[Callable[[Any], Any], set[Any]]],
                  report: Reporter) -> None:
    """COPY the member rows into the stage; errors name the row and its file line.

    `exact` re-parses the current row with Decimal numbers (see TablePlan.values)."""
    stage.columns = plan.columns
    lines = array("q")  # file line of each row sent, for COPY errors (0: unknown)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        stage.ident, sql.SQL(", ").join(sql.Identifier(c) for c in plan.columns))
    row_no, line_no = 0, None
    try:
        with report.progress(f"📥 {stage.table.name}", None) as advance, \
                conn.cursor().copy(statement) as copy:
            for row_no, line_no, value in rows:
                if not row_no % PROGRESS_EVERY:
                    advance(PROGRESS_EVERY)
                try:
                    if not member(value):
                        continue
                except (KeyError, TypeError):  # not a row of the table's shape
                    plan.values(value, row_no, line_no)  # raises the error naming the row
                    continue
                copy.write_row(plan.values(value, row_no, line_no, exact))
                lines.append(line_no or 0)
                for key, found in collect:
                    found.add(key(value))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        raise copy_error(exc, plan, section, row_no, line_no,
                         line_of=lambda n: lines[n - 1] or None if 0 < n <= len(lines)
                         else None) from None
    stage.rows = len(lines)


def analyze_stages(conn: psycopg.Connection, stages: dict[str, Stage]) -> None:
    """Statistics on the staged key columns, which the checks join on: without them the
    planner, told to stop at the first dangling row, may loop over one staged table per row
    of the other. Only those columns: text columns would cost far more to sample."""
    keyed: dict[str, set[str]] = {name: set(stage.table.primary_key)
                                  for name, stage in stages.items()}
    for stage in stages.values():
        for fk in stage.table.foreign_keys:
            keyed[stage.table.name].update(fk.columns)
            keyed.setdefault(fk.ref_table, set()).update(fk.ref_columns)
        for key in stage.table.unique_keys:
            keyed[stage.table.name].update(key)
    targets = [sql.SQL("{} ({})").format(stage.ident, sql.SQL(", ").join(
        sql.Identifier(c) for c in stage.columns if c in keyed[name]))
        for name, stage in stages.items() if keyed[name] & set(stage.columns)]
    if targets:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(targets)))


def rename_tenant(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
                  name: str) -> None:
    conn.execute(sql.SQL("UPDATE {} SET {} = %s").format(
        stages[scope.root.name].ident, sql.Identifier(scope.name_column)), (name,))


def settle_slug(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
                renamed: bool, report: Reporter) -> str | None:
    """Give a tenant added as new a slug that is free here: made from its new name when
    renamed, else its own unless another tenant has it (then `-2`, `-3`, ...). None when the
    tenants table has no slug column."""
    if "slug" not in scope.root.column_names:
        return None
    stage = stages[scope.root.name]
    # The stage holds the tenant's one row: stage_backup refuses a file without it.
    slug, name = cast("tuple[Any, ...]", conn.execute(sql.SQL("SELECT slug, {} FROM {}").format(
        sql.Identifier(scope.name_column), stage.ident)).fetchone())
    base = slugify(str(name)) if renamed or not slug else slug
    free = free_slug(conn, base)
    if free != slug:
        conn.execute(sql.SQL("UPDATE {} SET slug = %s").format(stage.ident), (free,))
        report.line(f"🔗 Slug: {free}" + (f" ({slug} is taken here)" if not renamed else ""))
    return free


def remap_ids(conn: psycopg.Connection, scope: TenantScope, stages: dict[str, Stage],
              tenant: Tenant, root_id: int | None = None) -> int:
    """Give every staged row whose primary key comes from a sequence a fresh id from it, and
    rewrite every foreign key to those rows; returns the tenant's new id (`root_id`: that
    one, the id of the live tenant the rows replace).

    References to rows outside the staged ones (shared rows) are kept as they are: the
    reference checks then require them to exist in this database.
    """
    maps: dict[str, tuple[sql.Identifier, str]] = {}  # table -> (old -> new map, its key)
    for index, stage in enumerate(stages.values()):
        table = stage.table
        if len(table.primary_key) != 1:
            continue
        pk = table.primary_key[0]
        sequence = next((seq for column, seq in serial_sequences(conn, table)
                         if column.name == pk), None)
        if sequence is None:
            continue
        twice = conn.execute(sql.SQL("SELECT {pk}::text FROM {stage} GROUP BY {pk} "
                                     "HAVING count(*) > 1 LIMIT 1").format(
            pk=sql.Identifier(pk), stage=stage.ident)).fetchone()
        if twice is not None:
            raise OpsError(f"the backup holds table {table.name} row {pk}={twice[0]} twice; "
                           "nothing was changed", hint="Restore another backup.")
        ident = sql.Identifier("pg_temp", f"tenant_map_{index}")
        conn.execute(sql.SQL(
            "CREATE TEMP TABLE {map} ON COMMIT DROP AS SELECT o.old, nextval({sequence}::regclass) "
            "AS new FROM (SELECT {pk} AS old FROM {stage} ORDER BY 1) o").format(
            map=ident, sequence=sql.Literal(sequence.as_string(conn)), pk=sql.Identifier(pk),
            stage=stage.ident))
        maps[table.name] = (ident, pk)
    if root_id is not None and scope.root.name in maps:
        conn.execute(sql.SQL("UPDATE {} SET new = %s WHERE old = %s").format(
            maps[scope.root.name][0]), (root_id, tenant.id))
    for stage in stages.values():
        table = stage.table
        for column in stage.columns:
            mapping = _map_of(table, column, maps)
            if mapping is not None:
                conn.execute(sql.SQL("UPDATE {stage} s SET {column} = m.new FROM {map} m "
                                     "WHERE s.{column} = m.old").format(
                    stage=stage.ident, column=sql.Identifier(column), map=mapping))
    if scope.root.name not in maps:  # the tenants table draws no ids from a sequence
        return tenant.id
    return int(scalar(conn, sql.SQL("SELECT new FROM {} WHERE old = %s").format(
        maps[scope.root.name][0]), (tenant.id,)))


def _map_of(table: Table, column: str,
            maps: dict[str, tuple[sql.Identifier, str]]) -> sql.Identifier | None:
    """The old -> new id map a column's values follow: the referenced table's, for a
    foreign key to a remapped primary key, else the table's own for its primary key."""
    for fk in table.foreign_keys:
        if fk.columns == (column,) and fk.ref_columns == (maps.get(fk.ref_table, (0, ""))[1],):
            return maps[fk.ref_table][0]
    own = maps.get(table.name)
    return own[0] if own is not None and table.primary_key == (column,) else None


def regenerate_public_ids(conn: psycopg.Connection, stages: dict[str, Stage],
                          report: Reporter,
                          replaced: Callable[[str], sql.Composable] | None = None
                          ) -> dict[str, int]:
    """New random values for staged public ids (unique uuid columns nothing references)
    that are taken in this database - by a row other than those `replaced(name)` selects
    (live rows `x` about to be deleted); returns how many per table."""
    referenced = {(fk.ref_table, c) for stage in stages.values()
                  for fk in stage.table.foreign_keys for c in fk.ref_columns}
    regenerated: dict[str, int] = {}
    for stage in stages.values():
        table = stage.table
        for column in table.writable_columns:
            name = column.name
            if (column.type != "uuid" or (name,) not in table.unique_keys
                    or (table.name, name) in referenced or name not in stage.columns):
                continue
            taken = conn.execute(sql.SQL(
                "UPDATE {stage} s SET {column} = gen_random_uuid() WHERE EXISTS "
                "(SELECT FROM {live} x WHERE x.{column} = s.{column}{unless})").format(
                stage=stage.ident, column=sql.Identifier(name),
                live=sql.Identifier(APP_SCHEMA, table.name),
                unless=sql.SQL("") if replaced is None else sql.SQL(" AND NOT ({})").format(
                    replaced(table.name)))).rowcount
            if taken:
                regenerated[table.name] = regenerated.get(table.name, 0) + taken
                report.line(f"🔑 {table.name}: {taken} {name} value(s) already taken here, "
                            "regenerated")
    return regenerated

