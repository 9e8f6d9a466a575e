"""initial tasklets schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:48:06.598055
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ops_metadata',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ops_metadata'))
    )
    op.create_table('tenants',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('plan', sa.Text(), server_default='free', nullable=False),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('name', name=op.f('uq_tenants_name'))
    )
    op.create_table('clients',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('website', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_clients_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_clients_tenant_id_name'))
    )
    op.create_index(op.f('ix_clients_tenant_id'), 'clients', ['tenant_id'], unique=False)
    op.create_table('products',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_products_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_products_tenant_id_name'))
    )
    op.create_index(op.f('ix_products_tenant_id'), 'products', ['tenant_id'], unique=False)
    op.create_table('tags',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('color', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tags_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_tags_tenant_id_name'))
    )
    op.create_index(op.f('ix_tags_tenant_id'), 'tags', ['tenant_id'], unique=False)
    op.create_table('teams',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_teams_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_teams_tenant_id_name'))
    )
    op.create_index(op.f('ix_teams_tenant_id'), 'teams', ['tenant_id'], unique=False)
    op.create_table('client_products',
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('licensed_at', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_products_client_id_clients'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_client_products_product_id_products'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('client_id', 'product_id', name=op.f('pk_client_products'))
    )
    op.create_index(op.f('ix_client_products_product_id'), 'client_products', ['product_id'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=True),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('user_type', postgresql.ENUM('internal', 'client', name='user_type'), server_default='internal', nullable=False),
    sa.Column('role', postgresql.ENUM('admin', 'developer', 'support', 'company_admin', 'user', name='user_role'), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(user_type = 'internal' AND client_id IS NULL AND role <> 'user') OR (user_type = 'client' AND client_id IS NOT NULL AND role IN ('user', 'company_admin'))", name=op.f('ck_users_role_matches_type')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_users_client_id_clients'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_users_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('tenant_id', 'email', name=op.f('uq_users_tenant_id_email'))
    )
    op.create_index(op.f('ix_users_client_id'), 'users', ['client_id'], unique=False)
    op.create_index(op.f('ix_users_tenant_id'), 'users', ['tenant_id'], unique=False)
    op.create_table('epics',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('public_id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', postgresql.ENUM('backlog', 'todo', 'in_progress', 'blocked', 'in_review', 'done', 'cancelled', name='work_status'), server_default='backlog', nullable=False),
    sa.Column('priority', postgresql.ENUM('critical', 'high', 'medium', 'low', 'none', name='priority'), server_default='medium', nullable=False),
    sa.Column('labels', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('external_source', sa.Text(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('assignee_id', sa.BigInteger(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_epics_assignee_id_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_epics_created_by_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_epics_product_id_products'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_epics_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_epics')),
    sa.UniqueConstraint('product_id', 'external_source', 'external_id', name=op.f('uq_epics_product_id_external_source_external_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_epics_public_id'))
    )
    op.create_index(op.f('ix_epics_assignee_id'), 'epics', ['assignee_id'], unique=False)
    op.create_index(op.f('ix_epics_created_by'), 'epics', ['created_by'], unique=False)
    op.create_index(op.f('ix_epics_product_id'), 'epics', ['product_id'], unique=False)
    op.create_index(op.f('ix_epics_tenant_id'), 'epics', ['tenant_id'], unique=False)
    op.create_table('ideas',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=True),
    sa.Column('submitted_by', sa.BigInteger(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), server_default='proposed', nullable=False),
    sa.Column('votes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_ideas_product_id_products'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['submitted_by'], ['users.id'], name=op.f('fk_ideas_submitted_by_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ideas_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ideas')),
    sa.UniqueConstraint('tenant_id', 'title', name=op.f('uq_ideas_tenant_id_title'))
    )
    op.create_index(op.f('ix_ideas_product_id'), 'ideas', ['product_id'], unique=False)
    op.create_index(op.f('ix_ideas_submitted_by'), 'ideas', ['submitted_by'], unique=False)
    op.create_index(op.f('ix_ideas_tenant_id'), 'ideas', ['tenant_id'], unique=False)
    op.create_table('team_members',
    sa.Column('team_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.Text(), server_default='member', nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_team_members_user_id_users'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_team_members'))
    )
    op.create_index(op.f('ix_team_members_user_id'), 'team_members', ['user_id'], unique=False)
    op.create_table('tickets',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('public_id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=True),
    sa.Column('reported_by', sa.BigInteger(), nullable=True),
    sa.Column('assignee_id', sa.BigInteger(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', postgresql.ENUM('open', 'in_progress', 'waiting', 'resolved', 'closed', name='ticket_status'), server_default='open', nullable=False),
    sa.Column('priority', postgresql.ENUM('critical', 'high', 'medium', 'low', 'none', name='priority'), server_default='medium', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_tickets_assignee_id_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_tickets_client_id_clients'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tickets_product_id_products'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['reported_by'], ['users.id'], name=op.f('fk_tickets_reported_by_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tickets_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('public_id', name=op.f('uq_tickets_public_id'))
    )
    op.create_index(op.f('ix_tickets_assignee_id'), 'tickets', ['assignee_id'], unique=False)
    op.create_index(op.f('ix_tickets_client_id'), 'tickets', ['client_id'], unique=False)
    op.create_index(op.f('ix_tickets_product_id'), 'tickets', ['product_id'], unique=False)
    op.create_index(op.f('ix_tickets_reported_by'), 'tickets', ['reported_by'], unique=False)
    op.create_index(op.f('ix_tickets_tenant_id'), 'tickets', ['tenant_id'], unique=False)
    op.create_table('features',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('public_id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('epic_id', sa.BigInteger(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', postgresql.ENUM('backlog', 'todo', 'in_progress', 'blocked', 'in_review', 'done', 'cancelled', name='work_status'), server_default='backlog', nullable=False),
    sa.Column('priority', postgresql.ENUM('critical', 'high', 'medium', 'low', 'none', name='priority'), server_default='medium', nullable=False),
    sa.Column('labels', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('external_source', sa.Text(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('assignee_id', sa.BigInteger(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_features_assignee_id_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_features_created_by_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['epic_id'], ['epics.id'], name=op.f('fk_features_epic_id_epics'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_features_product_id_products'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_features_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_features')),
    sa.UniqueConstraint('product_id', 'external_source', 'external_id', name=op.f('uq_features_product_id_external_source_external_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_features_public_id'))
    )
    op.create_index(op.f('ix_features_assignee_id'), 'features', ['assignee_id'], unique=False)
    op.create_index(op.f('ix_features_created_by'), 'features', ['created_by'], unique=False)
    op.create_index(op.f('ix_features_epic_id'), 'features', ['epic_id'], unique=False)
    op.create_index(op.f('ix_features_product_id'), 'features', ['product_id'], unique=False)
    op.create_index(op.f('ix_features_tenant_id'), 'features', ['tenant_id'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('public_id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('epic_id', sa.BigInteger(), nullable=True),
    sa.Column('feature_id', sa.BigInteger(), nullable=True),
    sa.Column('parent_task_id', sa.BigInteger(), nullable=True),
    sa.Column('task_type', sa.Text(), server_default='task', nullable=False),
    sa.Column('estimate_hours', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', postgresql.ENUM('backlog', 'todo', 'in_progress', 'blocked', 'in_review', 'done', 'cancelled', name='work_status'), server_default='backlog', nullable=False),
    sa.Column('priority', postgresql.ENUM('critical', 'high', 'medium', 'low', 'none', name='priority'), server_default='medium', nullable=False),
    sa.Column('labels', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('external_source', sa.Text(), nullable=True),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('created_by', sa.BigInteger(), nullable=True),
    sa.Column('assignee_id', sa.BigInteger(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('parent_task_id IS NULL OR parent_task_id <> id', name=op.f('ck_tasks_not_own_parent')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_tasks_assignee_id_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_tasks_created_by_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['epic_id'], ['epics.id'], name=op.f('fk_tasks_epic_id_epics'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_tasks_feature_id_features'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['parent_task_id'], ['tasks.id'], name=op.f('fk_tasks_parent_task_id_tasks'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_tasks_product_id_products'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tasks_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('product_id', 'external_source', 'external_id', name=op.f('uq_tasks_product_id_external_source_external_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_tasks_public_id'))
    )
    op.create_index(op.f('ix_tasks_assignee_id'), 'tasks', ['assignee_id'], unique=False)
    op.create_index(op.f('ix_tasks_created_by'), 'tasks', ['created_by'], unique=False)
    op.create_index(op.f('ix_tasks_epic_id'), 'tasks', ['epic_id'], unique=False)
    op.create_index(op.f('ix_tasks_feature_id'), 'tasks', ['feature_id'], unique=False)
    op.create_index(op.f('ix_tasks_parent_task_id'), 'tasks', ['parent_task_id'], unique=False)
    op.create_index(op.f('ix_tasks_product_id'), 'tasks', ['product_id'], unique=False)
    op.create_index(op.f('ix_tasks_tenant_id'), 'tasks', ['tenant_id'], unique=False)
    op.create_table('comments',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('epic_id', sa.BigInteger(), nullable=True),
    sa.Column('feature_id', sa.BigInteger(), nullable=True),
    sa.Column('task_id', sa.BigInteger(), nullable=True),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('author_id', sa.BigInteger(), nullable=True),
    sa.Column('author_name', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('num_nonnulls(epic_id, feature_id, task_id, ticket_id) = 1', name=op.f('ck_comments_exactly_one_item')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_comments_author_id_users'), ondelete='SET NULL', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['epic_id'], ['epics.id'], name=op.f('fk_comments_epic_id_epics'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_comments_feature_id_features'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_comments_task_id_tasks'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_comments_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_comments_ticket_id_tickets'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments'))
    )
    op.create_index(op.f('ix_comments_author_id'), 'comments', ['author_id'], unique=False)
    op.create_index(op.f('ix_comments_epic_id'), 'comments', ['epic_id'], unique=False)
    op.create_index(op.f('ix_comments_feature_id'), 'comments', ['feature_id'], unique=False)
    op.create_index(op.f('ix_comments_task_id'), 'comments', ['task_id'], unique=False)
    op.create_index(op.f('ix_comments_tenant_id'), 'comments', ['tenant_id'], unique=False)
    op.create_index(op.f('ix_comments_ticket_id'), 'comments', ['ticket_id'], unique=False)
    op.create_table('item_tags',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=False),
    sa.Column('epic_id', sa.BigInteger(), nullable=True),
    sa.Column('feature_id', sa.BigInteger(), nullable=True),
    sa.Column('task_id', sa.BigInteger(), nullable=True),
    sa.Column('ticket_id', sa.BigInteger(), nullable=True),
    sa.Column('idea_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('num_nonnulls(epic_id, feature_id, task_id, ticket_id, idea_id) = 1', name=op.f('ck_item_tags_exactly_one_item')),
    sa.ForeignKeyConstraint(['epic_id'], ['epics.id'], name=op.f('fk_item_tags_epic_id_epics'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['feature_id'], ['features.id'], name=op.f('fk_item_tags_feature_id_features'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['idea_id'], ['ideas.id'], name=op.f('fk_item_tags_idea_id_ideas'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_item_tags_tag_id_tags'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_item_tags_task_id_tasks'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_item_tags_ticket_id_tickets'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_tags')),
    sa.UniqueConstraint('tag_id', 'epic_id', name=op.f('uq_item_tags_tag_id_epic_id')),
    sa.UniqueConstraint('tag_id', 'feature_id', name=op.f('uq_item_tags_tag_id_feature_id')),
    sa.UniqueConstraint('tag_id', 'idea_id', name=op.f('uq_item_tags_tag_id_idea_id')),
    sa.UniqueConstraint('tag_id', 'task_id', name=op.f('uq_item_tags_tag_id_task_id')),
    sa.UniqueConstraint('tag_id', 'ticket_id', name=op.f('uq_item_tags_tag_id_ticket_id'))
    )
    op.create_index(op.f('ix_item_tags_epic_id'), 'item_tags', ['epic_id'], unique=False)
    op.create_index(op.f('ix_item_tags_feature_id'), 'item_tags', ['feature_id'], unique=False)
    op.create_index(op.f('ix_item_tags_idea_id'), 'item_tags', ['idea_id'], unique=False)
    op.create_index(op.f('ix_item_tags_tag_id'), 'item_tags', ['tag_id'], unique=False)
    op.create_index(op.f('ix_item_tags_task_id'), 'item_tags', ['task_id'], unique=False)
    op.create_index(op.f('ix_item_tags_ticket_id'), 'item_tags', ['ticket_id'], unique=False)
    op.create_table('task_dependencies',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('task_id', sa.BigInteger(), nullable=False),
    sa.Column('depends_on_task_id', sa.BigInteger(), nullable=False),
    sa.Column('dependency_type', sa.Text(), server_default='blocks', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['depends_on_task_id'], ['tasks.id'], name=op.f('fk_task_dependencies_depends_on_task_id_tasks'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_dependencies_task_id_tasks'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_task_dependencies_tenant_id_tenants'), ondelete='CASCADE', initially='IMMEDIATE', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_dependencies')),
    sa.UniqueConstraint('task_id', 'depends_on_task_id', 'dependency_type', name=op.f('uq_task_dependencies_task_id_depends_on_task_id_dependency_type'))
    )
    op.create_index(op.f('ix_task_dependencies_depends_on_task_id'), 'task_dependencies', ['depends_on_task_id'], unique=False)
    op.create_index(op.f('ix_task_dependencies_task_id'), 'task_dependencies', ['task_id'], unique=False)
    op.create_index(op.f('ix_task_dependencies_tenant_id'), 'task_dependencies', ['tenant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_task_dependencies_tenant_id'), table_name='task_dependencies')
    op.drop_index(op.f('ix_task_dependencies_task_id'), table_name='task_dependencies')
    op.drop_index(op.f('ix_task_dependencies_depends_on_task_id'), table_name='task_dependencies')
    op.drop_table('task_dependencies')
    op.drop_index(op.f('ix_item_tags_ticket_id'), table_name='item_tags')
    op.drop_index(op.f('ix_item_tags_task_id'), table_name='item_tags')
    op.drop_index(op.f('ix_item_tags_tag_id'), table_name='item_tags')
    op.drop_index(op.f('ix_item_tags_idea_id'), table_name='item_tags')
    op.drop_index(op.f('ix_item_tags_feature_id'), table_name='item_tags')
    op.drop_index(op.f('ix_item_tags_epic_id'), table_name='item_tags')
    op.drop_table('item_tags')
    op.drop_index(op.f('ix_comments_ticket_id'), table_name='comments')
    op.drop_index(op.f('ix_comments_tenant_id'), table_name='comments')
    op.drop_index(op.f('ix_comments_task_id'), table_name='comments')
    op.drop_index(op.f('ix_comments_feature_id'), table_name='comments')
    op.drop_index(op.f('ix_comments_epic_id'), table_name='comments')
    op.drop_index(op.f('ix_comments_author_id'), table_name='comments')
    op.drop_table('comments')
    op.drop_index(op.f('ix_tasks_tenant_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_product_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_parent_task_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_feature_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_epic_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_created_by'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_assignee_id'), table_name='tasks')
    op.drop_table('tasks')
    op.drop_index(op.f('ix_features_tenant_id'), table_name='features')
    op.drop_index(op.f('ix_features_product_id'), table_name='features')
    op.drop_index(op.f('ix_features_epic_id'), table_name='features')
    op.drop_index(op.f('ix_features_created_by'), table_name='features')
    op.drop_index(op.f('ix_features_assignee_id'), table_name='features')
    op.drop_table('features')
    op.drop_index(op.f('ix_tickets_tenant_id'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_reported_by'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_product_id'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_client_id'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_assignee_id'), table_name='tickets')
    op.drop_table('tickets')
    op.drop_index(op.f('ix_team_members_user_id'), table_name='team_members')
    op.drop_table('team_members')
    op.drop_index(op.f('ix_ideas_tenant_id'), table_name='ideas')
    op.drop_index(op.f('ix_ideas_submitted_by'), table_name='ideas')
    op.drop_index(op.f('ix_ideas_product_id'), table_name='ideas')
    op.drop_table('ideas')
    op.drop_index(op.f('ix_epics_tenant_id'), table_name='epics')
    op.drop_index(op.f('ix_epics_product_id'), table_name='epics')
    op.drop_index(op.f('ix_epics_created_by'), table_name='epics')
    op.drop_index(op.f('ix_epics_assignee_id'), table_name='epics')
    op.drop_table('epics')
    op.drop_index(op.f('ix_users_tenant_id'), table_name='users')
    op.drop_index(op.f('ix_users_client_id'), table_name='users')
    op.drop_table('users')
    op.drop_index(op.f('ix_client_products_product_id'), table_name='client_products')
    op.drop_table('client_products')
    op.drop_index(op.f('ix_teams_tenant_id'), table_name='teams')
    op.drop_table('teams')
    op.drop_index(op.f('ix_tags_tenant_id'), table_name='tags')
    op.drop_table('tags')
    op.drop_index(op.f('ix_products_tenant_id'), table_name='products')
    op.drop_table('products')
    op.drop_index(op.f('ix_clients_tenant_id'), table_name='clients')
    op.drop_table('clients')
    op.drop_table('tenants')
    op.drop_table('ops_metadata')
    for enum in ('ticket_status', 'priority', 'work_status', 'user_role', 'user_type'):
        postgresql.ENUM(name=enum).drop(op.get_bind(), checkfirst=True)
