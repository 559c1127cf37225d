"""dialer engine: the live status snapshot per campaign, and the SIP status on each attempt

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # as in 0001: a database that a store's create_all made already has these: adopt them
    inspector = sa.inspect(op.get_bind())
    if 'dialer_engine_status' not in set(inspector.get_table_names()):
        _create_status_table()
    columns = {c['name'] for c in inspector.get_columns('dialer_attempts')}
    if 'sip_status' not in columns:
        with op.batch_alter_table('dialer_attempts') as batch:
            batch.add_column(sa.Column('sip_status', sa.Integer(), nullable=True))


def _create_status_table() -> None:
    op.create_table('dialer_engine_status',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('status_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id')
    )


def downgrade() -> None:
    with op.batch_alter_table('dialer_attempts') as batch:
        batch.drop_column('sip_status')
    op.drop_table('dialer_engine_status')
