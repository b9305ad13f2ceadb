"""workers: what each worker offers (CPU cores, RAM, CUDA devices, labels), so jobs go where they can run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 16:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('cpu_count', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('ram_gb', sa.Float(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('devices', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('labels', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        for column in ('labels', 'devices', 'ram_gb', 'cpu_count'):
            batch.drop_column(column)
