"""Schema migrations through Alembic: push (upgrade), generate, check, revisions.

`push` also records the environment marker (through ops.core.guard), which destructive commands
read to refuse production targets. `upgrade_in_transaction` and `schema_at` run the migrations
on a connection the caller owns (a restore rebuilding an older revision inside its one
transaction), never committing it.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psycopg

from ops.core.catalog import Table, current_revision, discover_tables
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.db import connect, first_line, sqlalchemy_engine
from ops.core.errors import OpsError, UsageError
from ops.core.guard import MarkerChange, record_environment
from ops.core.output import SILENT, Reporter, suggest, suggest_flag

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.operations.ops import MigrationScript, UpgradeOps

# Alembic and SQLAlchemy are imported inside the functions that need them: together they cost
# about a second of start-up, which every backup/restore/seed command would otherwise pay.

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    return cfg


def head_revision(settings: Settings) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


@dataclass
class PushResult:
    from_revision: str | None
    to_revision: str | None
    applied: list[str] = field(default_factory=list)  # "rev: message", oldest first
    environment: str = ""  # the marker after the push
    marker: MarkerChange | None = None


def pending_revisions(settings: Settings, current: str | None,
                      target: str = "heads") -> list[str]:
    """"rev: message" of each migration from `current` (exclusive) to `target`, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(settings))
    revs = list(script.iterate_revisions(target, current or "base"))
    return [f"{r.revision}: {r.doc}" for r in reversed(revs)]


def upgrade_path(settings: Settings, start: str, end: str) -> list[str] | None:
    """"rev: message" of each migration from `start` (exclusive) to `end`, oldest first;
    None when `end` does not descend from `start`."""
    from alembic.script.revision import RevisionError

    try:
        return pending_revisions(settings, start, end)
    except RevisionError:
        return None


def known_revisions(settings: Settings) -> list[str]:
    """Every revision the migrations define, from base to head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(settings))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


class _Lent:
    """A psycopg connection lent to SQLAlchemy: statements run on it, but its transaction
    belongs to the lender - SQLAlchemy's rollbacks (pool resets, closing) and closing do
    nothing, and a commit would be a bug."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def commit(self) -> None:
        raise RuntimeError("the migrations may not commit a transaction they were lent")

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def upgrade_in_transaction(conn: psycopg.Connection, settings: Settings, revision: str) -> None:
    """`alembic upgrade revision` on `conn`, inside its open transaction: nothing is committed,
    so the caller's rollback undoes every migration with the rest of its work."""
    from alembic import command
    from sqlalchemy import create_engine, pool

    # No hstore lookup: psycopg's type registry wants the real connection, which is not lent.
    engine = create_engine("postgresql+psycopg://", creator=lambda: _Lent(conn),
                           poolclass=pool.NullPool, use_native_hstore=False)
    with engine.connect() as sa_conn:
        sa_conn.begin()  # Alembic then runs inside it instead of committing its own
        cfg = alembic_config(settings)
        cfg.attributes["connection"] = sa_conn
        command.upgrade(cfg, revision)


def schema_at(conn: psycopg.Connection, settings: Settings, revision: str) -> list[Table]:
    """The app tables as the migrations build them at `revision`, without touching the
    database: built in this session's temporary schema, inside a savepoint rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL search_path = pg_temp")
        upgrade_in_transaction(conn, settings, revision)
        row = conn.execute("SELECT nspname FROM pg_namespace "
                           "WHERE oid = pg_my_temp_schema()").fetchone()
        assert row is not None  # the upgrade made the temporary schema (alembic_version)
        return discover_tables(conn, row[0])


def push(settings: Settings, report: Reporter = SILENT, *,
         allow_production: bool = False) -> PushResult:
    """Upgrade the database to head and record the environment marker, in one transaction.

    A production marker stays production unless `allow_production` (see ops.core.guard).
    """
    from alembic import command

    report.line("🔄 Pushing schema (alembic upgrade head)...")
    with connect(settings) as conn:
        before = current_revision(conn)
    pending = pending_revisions(settings, before)
    engine = sqlalchemy_engine(settings)
    try:
        with engine.begin() as sa_conn:
            cfg = alembic_config(settings)
            cfg.attributes["connection"] = sa_conn
            command.upgrade(cfg, "head")
            # the engine's driver is psycopg, its connection open inside begin()
            driver = cast("psycopg.Connection[Any]", sa_conn.connection.driver_connection)
            marker = record_environment(driver, settings, allow_production=allow_production)
    except Exception as exc:  # SQLAlchemy/psycopg errors: one line, the transaction rolled back
        raise OpsError(
            f"migration failed, nothing applied: {first_line(exc.__cause__ or exc)}"
        ) from None
    finally:
        engine.dispose()
    for rev in pending:
        report.line(f"✅ Applied {rev}")
    head = head_revision(settings)
    if pending:
        report.line(f"✅ Schema pushed! Database is at {head}")
    else:
        report.line(f"✅ Schema is already up to date (head: {head})")
    if marker.kept_production:
        report.line(f"🛡️  The database stays marked production (APP_ENV="
                    f"{settings.app_env if settings.app_env_set else 'unset'} does not "
                    f"downgrade it; to change the marker: {suggest_flag('--allow-production')})")
    return PushResult(before, head, pending, marker.after or settings.app_env, marker)


def upgrade_sql(settings: Settings) -> str:
    """The SQL `push` would run from an empty database, without touching any database."""
    from alembic import command

    cfg = alembic_config(settings)
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    command.upgrade(cfg, "head", sql=True)
    return buffer.getvalue()


def generate(settings: Settings, message: str, *, allow_empty: bool = False) -> Path | None:
    """Autogenerate a revision from the difference between the database and ops.schema.models;
    None, and nothing written, when there is no difference (unless `allow_empty`)."""
    from alembic import command

    if not message.strip():
        raise UsageError("a revision needs a message", hint='Pass -m "add due dates to ideas".')
    with connect(settings) as conn:
        current = current_revision(conn)
    if current != head_revision(settings):
        raise OpsError(
            f"the database is at {current or 'no revision'}, not head; generating against it "
            "would repeat pending migrations",
            hint=f"Run {suggest('push')} first.",
        )
    cfg = alembic_config(settings)

    def skip_empty(context: object, revision: object,
                   directives: list[MigrationScript]) -> None:
        # autogenerate gives every script its UpgradeOps (None only for a hand-made one)
        if not allow_empty and all(cast("UpgradeOps", d.upgrade_ops).is_empty()
                                   for d in directives):
            directives[:] = []  # alembic then writes no file

    # Alembic prints "Generating <path> ... done" itself, with the path as this process sees
    # it (in a container, not the user's); the CLI says what was written instead.
    with contextlib.redirect_stdout(io.StringIO()):
        script = command.revision(cfg, message=message, autogenerate=True,
                                  process_revision_directives=skip_empty)
    scripts = [s for s in (script if isinstance(script, list) else [script]) if s is not None]
    return Path(scripts[0].path) if scripts else None


def schema_differences(settings: Settings) -> list[str]:
    """Human-readable differences between the models and the live database (empty: in sync)."""
    with connect(settings) as conn:
        current = current_revision(conn)
    head = head_revision(settings)
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ops.schema.models import metadata

    diffs: list[str] = []
    if current != head:
        diffs.append(f"database revision is {current or 'none'}, head is {head}")
    engine = sqlalchemy_engine(settings)
    try:
        with engine.connect() as sa_conn:
            context = MigrationContext.configure(
                sa_conn, opts={"compare_type": True, "target_metadata": metadata}
            )
            for diff in compare_metadata(context, metadata):
                diffs.append(describe_diff(diff))
    finally:
        engine.dispose()
    return diffs


def describe_diff(diff: tuple[Any, ...] | list[Any]) -> str:
    """One line per Alembic diff tuple, e.g. 'add_column: tasks.color'."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(describe_diff(d) for d in diff)
    kind, *rest = diff
    parts: list[str] = []
    for item in rest:
        name = getattr(item, "name", None)
        table = getattr(getattr(item, "table", None), "name", None)
        if name and table and table != name:
            parts.append(f"{table}.{name}")
        elif name:
            parts.append(str(name))
        elif isinstance(item, str):
            parts.append(item)
    return f"{kind}: {' '.join(p for p in parts if p)}".strip()
