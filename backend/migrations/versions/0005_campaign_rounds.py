"""campaigns: the loop's round and the models a campaign was made from (leaderboard: round 1 → round 2)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default='1'))
        batch.add_column(sa.Column('parent_models', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('parent_models')
        batch.drop_column('round')
