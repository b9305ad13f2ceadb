"""sign_in_failures: wrong passwords per name, so sign-in can be throttled (5 in 15 minutes)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 02:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sign_in_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sign_in_failures_name_at', 'sign_in_failures', ['name', 'at'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_failures_name_at', table_name='sign_in_failures')
    op.drop_table('sign_in_failures')
