"""cdrs: one row per call (dialtone.cdr)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('dialtone_cdrs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('sip_call_id', sa.String(length=256), nullable=True),
    sa.Column('node_id', sa.String(length=128), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('caller', sa.String(length=256), nullable=False),
    sa.Column('called', sa.String(length=256), nullable=False),
    sa.Column('remote', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('answered_at', sa.Float(), nullable=True),
    sa.Column('ended_at', sa.Float(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('end_cause', sa.String(length=32), nullable=False),
    sa.Column('sip_status', sa.Integer(), nullable=True),
    sa.Column('sip_reason', sa.String(length=128), nullable=True),
    sa.Column('by_remote', sa.Boolean(), nullable=False),
    sa.Column('flow', sa.String(length=256), nullable=True),
    sa.Column('flow_path', sa.Text(), nullable=False),
    sa.Column('end_node', sa.String(length=128), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('disposition', sa.String(length=32), nullable=True),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('handoff_result', sa.String(length=64), nullable=True),
    sa.Column('handoff_target', sa.String(length=256), nullable=True),
    sa.Column('agent', sa.String(length=128), nullable=True),
    sa.Column('amd', sa.String(length=16), nullable=True),
    sa.Column('rtp_received', sa.Integer(), nullable=False),
    sa.Column('rtp_lost', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dialtone_cdrs', schema=None) as batch_op:
        batch_op.create_index('ix_dialtone_cdrs_call', ['call_id'], unique=False)
        batch_op.create_index('ix_dialtone_cdrs_started', ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dialtone_cdrs', schema=None) as batch_op:
        batch_op.drop_index('ix_dialtone_cdrs_started')
        batch_op.drop_index('ix_dialtone_cdrs_call')

    op.drop_table('dialtone_cdrs')
