"""estimate minutes and tenant slugs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00

- `tasks.estimate_hours numeric(10,2)` becomes `tasks.estimate_minutes integer`
  (`round(hours * 60)`), so trackers that count minutes (beads) map without rounding.
- `tenants.slug`: unique, not null, URL-safe, backfilled from the name; names that give the
  same slug get `-2`, `-3`, ... in id order.

Everything is SQL (no rows read into Python), so `push --sql` prints a script that migrates a
populated database too. Both changes can be downgraded (minutes back to hours keeps two
decimals, as the old column did).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SLUG_PATTERN = '^[a-z0-9]+(-[a-z0-9]+)*$'

# An hours value whose minutes do not fit an integer would fail the conversion with a bare
# "integer out of range": name the task instead, so the fix is obvious.
CHECK_ESTIMATES = r"""
DO $$
DECLARE
  bad record;
BEGIN
  SELECT id, estimate_hours INTO bad FROM tasks
  WHERE round(estimate_hours * 60) NOT BETWEEN -2147483648 AND 2147483647
  ORDER BY id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'task % has estimate_hours %, more minutes than an integer holds (at most '
      '35791394.12 hours): lower it, then migrate again', bad.id, bad.estimate_hours;
  END IF;
END $$
"""

# The slug of a name: accents folded to ASCII (NFKD, then non-ASCII dropped), lower case, every
# run of other characters one hyphen, at most 50 characters, `tenant` when nothing is left.
# Taken slugs get the next free `-N`; the unique index added first keeps the lookup fast.
BACKFILL_SLUGS = r"""
DO $$
DECLARE
  r record;
  base text;
  candidate text;
  n int;
BEGIN
  FOR r IN SELECT id, name FROM tenants ORDER BY id LOOP
    base := regexp_replace(lower(regexp_replace(normalize(r.name, NFKD), '[^[:ascii:]]', '',
                                                'g')), '[^a-z0-9]+', '-', 'g');
    base := trim(both '-' from left(trim(both '-' from base), 50));
    IF base = '' THEN
      base := 'tenant';
    END IF;
    candidate := base;
    n := 1;
    WHILE EXISTS (SELECT FROM tenants WHERE slug = candidate) LOOP
      n := n + 1;
      candidate := base || '-' || n;
    END LOOP;
    UPDATE tenants SET slug = candidate WHERE id = r.id;
  END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(CHECK_ESTIMATES)
    op.alter_column('tasks', 'estimate_hours', new_column_name='estimate_minutes',
                    type_=sa.Integer(), existing_type=sa.Numeric(10, 2),
                    postgresql_using='round(estimate_hours * 60)::integer')
    op.add_column('tenants', sa.Column('slug', sa.Text(), nullable=True))
    op.create_unique_constraint(op.f('uq_tenants_slug'), 'tenants', ['slug'])
    op.execute(BACKFILL_SLUGS)
    op.alter_column('tenants', 'slug', nullable=False, existing_type=sa.Text())
    op.create_check_constraint(op.f('ck_tenants_slug_url_safe'), 'tenants',
                               f"slug ~ '{SLUG_PATTERN}'")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_tenants_slug_url_safe'), 'tenants', type_='check')
    op.drop_constraint(op.f('uq_tenants_slug'), 'tenants', type_='unique')
    op.drop_column('tenants', 'slug')
    op.alter_column('tasks', 'estimate_minutes', new_column_name='estimate_hours',
                    type_=sa.Numeric(10, 2), existing_type=sa.Integer(),
                    postgresql_using='round(estimate_minutes / 60.0, 2)')
