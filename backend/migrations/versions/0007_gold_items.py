"""gold items (a known best completion per item), each campaign's gold rate and "too fast" time per completion

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 02:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('gold_rate', sa.Float(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('too_fast_seconds', sa.Float(), nullable=False, server_default='2'))
    with op.batch_alter_table('campaign_items') as batch:
        batch.add_column(sa.Column('gold_completion_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_items') as batch:
        batch.drop_column('gold_completion_id')
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('too_fast_seconds')
        batch.drop_column('gold_rate')
