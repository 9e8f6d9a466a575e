"""Which live tenant a tenant restore replaces, and whether that is the backup's tenant.

A tenant's rows are replaced under the ids the file carries, and ids belong to one database:
id 1 in another database may be another tenant here. So before anything live is touched the
backup's tenant (id, name, slug) and the database it came from (meta `source`, the server's
own identity) are checked against the live tenants:
- same database: the live tenant of that id, if any, is it (renamed or not: ids are a
  tenant's identity within one database), and no other live tenant may have its slug or
  name (it was recreated under another id);
- another database: a live tenant of that id must have its slug and its name, or there must be
  none with that id, slug or name (nothing live is replaced);
- an older backup that records no source database: only when nothing live has that id, slug
  or name.
Anything else is refused in one line naming both tenants, unless the operator names the
tenant to replace (`--into-tenant`: with the file's id the rows keep their ids; with another,
every row is loaded under a fresh id and the tenant under that tenant's) or loads the backup
as a new tenant under fresh ids (`--new-ids`, checked nowhere here).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ops.core.db import DatabaseIdentity, database_identity
from ops.core.errors import Refused
from ops.core.output import suggest_flag
from ops.core.tenancy import TENANT_SLUG_COLUMN, Tenant, TenantScope


def check_target(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant,
                 source: DatabaseIdentity | None, backup: str,
                 into: str | None) -> Tenant | None:
    """Refuse (Refused: nothing was changed) unless the live rows a restore of the backup's
    `tenant` replaces are that tenant's; `into` names the live tenant to replace. Returns
    that tenant when its id is not the file's (its rows are then replaced under fresh ids)."""
    if into is not None:
        target = scope.find(conn, into)
        return target if target.id != tenant.id else None
    live = _related(conn, scope, tenant)
    holder = next((t for t in live if t.id == tenant.id), None)
    namesake = next((t for t in live if t.id != tenant.id), None)
    same = source is not None and source.same_database(database_identity(conn))
    origin = "this database" if same else "another database" if source is not None \
        else "a database it does not record"
    if namesake is not None:
        raise Refused(
            f"{backup} holds {tenant} from {origin}, but here that tenant is {namesake}: its "
            f"rows would land under id {tenant.id}{_held(holder)}; nothing was changed",
            hint=f"To replace {namesake.name} with it (under fresh ids): "
            f"{suggest_flag(f'--into-tenant {namesake.id}')}; or load it as a new tenant: "
            f"{_new_ids()}.")
    if holder is None:
        return None  # no live tenant has its id, slug or name: nothing live is replaced
    if source is None or tenant.slug is None:
        raise Refused(
            f"{backup} does not record which database {tenant} came from (an older backup), "
            f"and here id {tenant.id} is {holder}: cannot tell they are the same tenant; "
            "nothing was changed",
            hint=f"If they are: {suggest_flag(f'--into-tenant {holder.id}')}; otherwise "
            f"load it as a new tenant: {_new_ids()}.")
    if same:  # ids are a tenant's identity within one database (renamed or not)
        return None
    if holder.slug == tenant.slug and holder.name == tenant.name:
        return None
    raise Refused(
        f"{backup} holds {tenant} from {origin}, but here id {tenant.id} is {holder}: restoring "
        f"would replace {holder.name}'s rows; nothing was changed",
        hint=f"Load it as a new tenant under fresh ids: {_new_ids()}; or, if {holder.name} "
        f"is meant to be replaced: {suggest_flag(f'--into-tenant {holder.id}')}.")


def _related(conn: psycopg.Connection, scope: TenantScope, tenant: Tenant) -> list[Tenant]:
    """Live tenants with the tenant's id, name or slug."""
    match = [sql.SQL("{} = %s").format(sql.Identifier(scope.root.primary_key[0])),
             sql.SQL("{}::text = %s").format(sql.Identifier(scope.name_column))]
    params: list[int | str] = [tenant.id, tenant.name]
    if tenant.slug is not None and TENANT_SLUG_COLUMN in scope.root.column_names:
        match.append(sql.SQL("{}::text = %s").format(sql.Identifier(TENANT_SLUG_COLUMN)))
        params.append(tenant.slug)
    return scope.select(conn, sql.SQL(" OR ").join(match), tuple(params))


def _held(holder: Tenant | None) -> str:
    return f", which is {holder} here" if holder is not None else ""


def _new_ids() -> str:
    return suggest_flag("--new-ids") + " (and --rename NEW if its name is taken)"
