"""jobs.submission_token: one per form submission, so a double click queues one job

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('submission_token', sa.String(length=64), nullable=True))
        batch.create_unique_constraint('uq_jobs_submission_token', ['submission_token'])


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_constraint('uq_jobs_submission_token', type_='unique')
        batch.drop_column('submission_token')
