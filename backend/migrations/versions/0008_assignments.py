"""assignments: overlap slots reserved when an item is served, so the overlap is exact under concurrency

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 02:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'assignments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('done', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['campaign_items.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('item_id', 'slot', name='uq_assignments_item_slot'),
        sa.UniqueConstraint('item_id', 'user_id', name='uq_assignments_item_user'),
    )
    op.create_index('ix_assignments_user_id', 'assignments', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_assignments_user_id', table_name='assignments')
    op.drop_table('assignments')
