"""The Tasklets schema as SQLAlchemy Core metadata: the single source of truth.

Alembic autogenerate compares the live database against `metadata`; `tasklets-db check`
fails when they drift. Every foreign key is DEFERRABLE INITIALLY IMMEDIATE so a restore can
`SET CONSTRAINTS ALL DEFERRED` without superuser rights.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from ops.core.catalog import OPS_METADATA_TABLE
from ops.core.slugs import SLUG_PATTERN
from ops.core.vocabulary import PRIORITIES, TICKET_STATUSES, USER_ROLES, WORK_STATUSES

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)



user_type = pg.ENUM("internal", "client", name="user_type", metadata=metadata)
user_role = pg.ENUM(*USER_ROLES, name="user_role", metadata=metadata)
work_status = pg.ENUM(*WORK_STATUSES, name="work_status", metadata=metadata)
priority = pg.ENUM(*PRIORITIES, name="priority", metadata=metadata)
ticket_status = pg.ENUM(*TICKET_STATUSES, name="ticket_status", metadata=metadata)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _fk(column: str, target: str, *, nullable: bool = True,
        ondelete: str = "CASCADE") -> sa.Column[int]:
    return sa.Column(
        column,
        sa.BigInteger,
        sa.ForeignKey(target, ondelete=ondelete, deferrable=True, initially="IMMEDIATE"),
        nullable=nullable,
        index=True,
    )


def _tenant() -> sa.Column[int]:
    return _fk("tenant_id", "tenants.id", nullable=False)


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    ]


def _public_id() -> sa.Column[uuid.UUID]:
    return sa.Column("public_id", pg.UUID(as_uuid=True), nullable=False, unique=True,
                     server_default=sa.text("gen_random_uuid()"))


def _work_item_columns() -> list[sa.Column[Any]]:
    """Columns epics, features and tasks share (the beads import keys on external_*)."""
    return [
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("status", work_status, nullable=False, server_default="backlog"),
        sa.Column("priority", priority, nullable=False, server_default="medium"),
        sa.Column("labels", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("external_source", sa.Text),
        sa.Column("external_id", sa.Text),
        _fk("created_by", "users.id", ondelete="SET NULL"),
        _fk("assignee_id", "users.id", ondelete="SET NULL"),
        sa.Column("due_date", sa.Date),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        *_timestamps(),
    ]


tenants = sa.Table(
    "tenants", metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("plan", sa.Text, nullable=False, server_default="free"),
    sa.Column("settings", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    *_timestamps(),
    # For URLs: set by every writer (ops.seed.helpers.tenant_slug), backfilled by 0002.
    sa.Column("slug", sa.Text, nullable=False, unique=True),
    sa.CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_url_safe"),
)

clients = sa.Table(
    "clients", metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("website", sa.Text),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "name"),
)

users = sa.Table(
    "users", metadata,
    _id(),
    _tenant(),
    _fk("client_id", "clients.id"),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("user_type", user_type, nullable=False, server_default="internal"),
    sa.Column("role", user_role, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "email"),
    sa.CheckConstraint(
        "(user_type = 'internal' AND client_id IS NULL AND role <> 'user')"
        " OR (user_type = 'client' AND client_id IS NOT NULL"
        " AND role IN ('user', 'company_admin'))",
        name="role_matches_type",
    ),
)

teams = sa.Table(
    "teams", metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "name"),
)

team_members = sa.Table(
    "team_members", metadata,
    sa.Column("team_id", sa.BigInteger,
              sa.ForeignKey("teams.id", ondelete="CASCADE", deferrable=True, initially="IMMEDIATE"),
              primary_key=True),
    sa.Column("user_id", sa.BigInteger,
              sa.ForeignKey("users.id", ondelete="CASCADE", deferrable=True, initially="IMMEDIATE"),
              primary_key=True, index=True),
    sa.Column("role", sa.Text, nullable=False, server_default="member"),
    sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

products = sa.Table(
    "products", metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "name"),
)

client_products = sa.Table(
    "client_products", metadata,
    sa.Column("client_id", sa.BigInteger,
              sa.ForeignKey("clients.id", ondelete="CASCADE", deferrable=True,
                            initially="IMMEDIATE"),
              primary_key=True),
    sa.Column("product_id", sa.BigInteger,
              sa.ForeignKey("products.id", ondelete="CASCADE", deferrable=True,
                            initially="IMMEDIATE"),
              primary_key=True, index=True),
    sa.Column("licensed_at", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

epics = sa.Table(
    "epics", metadata,
    _id(),
    _public_id(),
    _tenant(),
    _fk("product_id", "products.id", nullable=False),
    *_work_item_columns(),
    sa.UniqueConstraint("product_id", "external_source", "external_id"),
)

features = sa.Table(
    "features", metadata,
    _id(),
    _public_id(),
    _tenant(),
    _fk("product_id", "products.id", nullable=False),
    _fk("epic_id", "epics.id", ondelete="SET NULL"),
    *_work_item_columns(),
    sa.UniqueConstraint("product_id", "external_source", "external_id"),
)

tasks = sa.Table(
    "tasks", metadata,
    _id(),
    _public_id(),
    _tenant(),
    _fk("product_id", "products.id", nullable=False),
    _fk("epic_id", "epics.id", ondelete="SET NULL"),
    _fk("feature_id", "features.id", ondelete="SET NULL"),
    _fk("parent_task_id", "tasks.id", ondelete="SET NULL"),
    sa.Column("task_type", sa.Text, nullable=False, server_default="task"),
    sa.Column("estimate_minutes", sa.Integer),
    *_work_item_columns(),
    sa.UniqueConstraint("product_id", "external_source", "external_id"),
    sa.CheckConstraint("parent_task_id IS NULL OR parent_task_id <> id", name="not_own_parent"),
)

task_dependencies = sa.Table(
    "task_dependencies", metadata,
    _id(),
    _tenant(),
    _fk("task_id", "tasks.id", nullable=False),
    _fk("depends_on_task_id", "tasks.id", nullable=False),
    sa.Column("dependency_type", sa.Text, nullable=False, server_default="blocks"),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.UniqueConstraint("task_id", "depends_on_task_id", "dependency_type"),
)

tickets = sa.Table(
    "tickets", metadata,
    _id(),
    _public_id(),
    _tenant(),
    _fk("product_id", "products.id", nullable=False),
    _fk("client_id", "clients.id", ondelete="SET NULL"),
    _fk("reported_by", "users.id", ondelete="SET NULL"),
    _fk("assignee_id", "users.id", ondelete="SET NULL"),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", ticket_status, nullable=False, server_default="open"),
    sa.Column("priority", priority, nullable=False, server_default="medium"),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("due_date", sa.Date),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    *_timestamps(),
)

ideas = sa.Table(
    "ideas", metadata,
    _id(),
    _tenant(),
    _fk("product_id", "products.id", ondelete="SET NULL"),
    _fk("submitted_by", "users.id", ondelete="SET NULL"),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="proposed"),
    sa.Column("votes", sa.Integer, nullable=False, server_default="0"),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "title"),
)

tags = sa.Table(
    "tags", metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("color", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.UniqueConstraint("tenant_id", "name"),
)

# Items that can carry tags or comments: one nullable FK per kind, exactly one set, so
# every reference is a real foreign key (a polymorphic item_type/item_id could dangle).
TAGGABLE = ("epic", "feature", "task", "ticket", "idea")
COMMENTABLE = ("epic", "feature", "task", "ticket")


def _one_of(kinds: tuple[str, ...]) -> sa.CheckConstraint:
    cols = ", ".join(f"{k}_id" for k in kinds)
    return sa.CheckConstraint(f"num_nonnulls({cols}) = 1", name="exactly_one_item")


item_tags = sa.Table(
    "item_tags", metadata,
    _id(),
    _fk("tag_id", "tags.id", nullable=False),
    *[_fk(f"{kind}_id", f"{kind}s.id") for kind in TAGGABLE],
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    _one_of(TAGGABLE),
    *[sa.UniqueConstraint("tag_id", f"{kind}_id") for kind in TAGGABLE],
)

comments = sa.Table(
    "comments", metadata,
    _id(),
    _tenant(),
    *[_fk(f"{kind}_id", f"{kind}s.id") for kind in COMMENTABLE],
    _fk("author_id", "users.id", ondelete="SET NULL"),
    sa.Column("author_name", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    *_timestamps(),
    _one_of(COMMENTABLE),
)

ops_metadata = sa.Table(
    OPS_METADATA_TABLE, metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)
