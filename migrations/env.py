"""Alembic environment: the same settings and connection as the CLI, the schema module as the
target, and the production guard on every downgrade (`alembic downgrade` run by hand too)."""

from __future__ import annotations

from alembic import context
from alembic.util import CommandError

from ops.core.config import load_settings
from ops.core.db import sqlalchemy_engine
from ops.core.errors import Refused
from ops.core.guard import refuse_production
from ops.schema.models import metadata

config = context.config
settings = config.attributes.get("settings") or load_settings()
# `alembic -x allow-production=yes downgrade ...`: what --allow-production is to `reset`
ALLOW_PRODUCTION = context.get_x_argument(as_dictionary=True).get(
    "allow-production", "").lower() in ("1", "yes", "true")


def guard_downgrade(ctx, step, heads, run_args) -> None:  # noqa: ANN001 - Alembic's hook
    """Refuse a downgrade step on a production target. The step ran inside the migrations'
    one transaction, which the refusal rolls back (PostgreSQL's DDL is transactional)."""
    if step.is_upgrade or step.is_stamp:
        return
    try:
        refuse_production(ctx.connection.connection.driver_connection, settings,
                          action="run a downgrade on", allow_production=ALLOW_PRODUCTION,
                          hint="If you really mean to, run `alembic -x allow-production=yes "
                          "downgrade ...`; to load an older backup, restore it (it is "
                          "migrated up to this schema).")
    except Refused as exc:  # Alembic's own one-line error ("FAILED: ..."), not a traceback
        raise CommandError(f"{exc.message}\n💡 {exc.hint}") from None


def run_migrations_offline() -> None:
    context.configure(dialect_name="postgresql", target_metadata=metadata, literal_binds=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sqlalchemy_engine(settings)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      transaction_per_migration=False, on_version_apply=guard_downgrade)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
