"""Template databases: found by hash, or built once - by one builder at a time, whichever
process asks first (another pool, another xdist worker) - and then never connected to.

A build happens in `tdb_bld_<hash>`: the name is the lock (a second CREATE DATABASE of it
fails), so two builders on one server never build the same template twice. When the build
is done the database is marked a template that takes no connections (CREATE DATABASE ...
TEMPLATE needs its source without sessions) and renamed to `tdb_tpl_<hash>`, so a template
under that name is always complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ops.core.db import first_line
from ops.core.errors import OpsError
from ops.core.output import SILENT, Reporter
from ops.seed.custom import run_seed
from ops.testdb.admin import (
    Admin,
    create_database,
    database_size,
    drop_pool_database,
    set_comment,
)
from ops.testdb.marks import (
    BUILD,
    TEMPLATE,
    Owner,
    build_name,
    comment_for,
    orphans,
    pool_databases,
    template_name,
)
from ops.testdb.recipe import Recipe

BUILD_WAIT_SECONDS = 1800.0  # how long to wait for another process's build of the same hash
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Template:
    hash: str
    name: str
    family: str
    size: int  # bytes
    built: bool  # built by this call (False: found)
    seconds: float  # the build's, or 0


def find_template(conn: psycopg.Connection, template_hash: str) -> Template | None:
    for db in pool_databases(conn):
        if db.kind == TEMPLATE and db.hash == template_hash:
            return Template(db.hash, db.name, str(db.mark.get("family", "")),
                            int(db.mark.get("size", 0)), False, 0.0)
    return None


def ensure_template(admin: Admin, recipe: Recipe, template_hash: str, owner: Owner, *,
                    grace: float = 5.0, report: Reporter = SILENT) -> Template:
    """The template for `template_hash`: the existing one, or built now from `recipe`."""
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    building = build_name(template_hash)
    with admin.connect() as conn:
        while True:
            found = find_template(conn, template_hash)
            if found is not None:
                return found
            try:
                create_database(conn, admin, building,
                                comment_for(BUILD, template_hash, owner, family=recipe.family))
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                # another process builds it (two CREATEs at once: the catalog's unique
                # index says so): wait for it, or for it to die
                pass
            else:
                # another process may have renamed its build to the template between the
                # look above and this CREATE (the name was free again): ours is not needed
                found = find_template(conn, template_hash)
                if found is None:
                    break
                drop_pool_database(conn, admin, building)
                return found
            if any(db.name == building for db in orphans(conn, owner, grace=grace)):
                drop_pool_database(conn, admin, building)
                continue
            if time.monotonic() > deadline:
                raise OpsError(f"gave up waiting for another process to build template "
                               f"{template_hash} ({building})")
            time.sleep(POLL_SECONDS)
    report.line(f"🏗️  Building template {template_hash} ({recipe.family})...")
    started = time.monotonic()
    try:
        _fill(admin, building, recipe)
        with admin.connect() as conn:
            size = database_size(conn, building)
            seconds = round(time.monotonic() - started, 3)
            name = sql.Identifier(building)
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true ALLOW_CONNECTIONS false")
                         .format(name))
            set_comment(conn, building, comment_for(
                TEMPLATE, template_hash, None, family=recipe.family, size=size,
                seconds=seconds, built=time.time()))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                name, sql.Identifier(template_name(template_hash))))
    except BaseException as exc:
        _discard(admin, building)
        if isinstance(exc, OpsError):
            raise OpsError(f"template {template_hash} ({recipe.family}) failed to build, "
                           f"nothing was kept: {exc.message}", hint=exc.hint) from exc
        if isinstance(exc, psycopg.Error):
            raise OpsError(f"template {template_hash} failed to build: {first_line(exc)}") \
                from exc
        raise
    report.line(f"✅ Template {template_hash} built in {seconds:.1f}s "
                f"({size / 1e6:.1f} MB)")
    return Template(template_hash, template_name(template_hash), recipe.family, size, True,
                    seconds)


def _fill(admin: Admin, name: str, recipe: Recipe) -> None:
    """push, the snapshot, the seeds: what `fresh` and `seed run` do, into the build."""
    from ops.restore.snapshot import fresh_from_snapshot
    from ops.schema.migrate import push

    target = admin.settings_for(name)
    if recipe.snapshot:
        fresh_from_snapshot(target, recipe.snapshot, safety_backup=False)
    else:
        push(target)
    for seed in recipe.seeds:
        run_seed(target, seed)


def _discard(admin: Admin, name: str) -> None:
    try:
        with admin.connect() as conn:
            drop_pool_database(conn, admin, name)
    except (OpsError, psycopg.Error):
        pass  # an orphan now: the next start of any pool drops it


def drop_template(conn: psycopg.Connection, admin: Admin, template_hash: str) -> bool:
    """Drop the template, unless a clone is being made from it (it stays for a later try)."""
    conn.execute("SET lock_timeout = '200ms'")
    try:
        return drop_pool_database(conn, admin, template_name(template_hash))
    except (OpsError, psycopg.errors.LockNotAvailable):
        return False
    finally:
        conn.execute("RESET lock_timeout")
