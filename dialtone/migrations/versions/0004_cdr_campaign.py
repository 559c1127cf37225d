"""cdrs: the campaign of an outbound campaign call (its disposition goes in ``disposition``)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table('dialtone_cdrs') as batch:
        batch.add_column(sa.Column('campaign', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dialtone_cdrs') as batch:
        batch.drop_column('campaign')
