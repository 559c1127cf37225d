"""dialer_contacts: an index in the lease's order (priority, then due time), so a lease reads
the contacts it needs instead of sorting every pending contact of the campaign

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | None = None
depends_on: str | None = None

NAME = 'ix_dialer_contacts_lease_order'


def upgrade() -> None:
    # DialerStore makes it on a database it opens (checkfirst): it may be there already.
    existing = {ix['name'] for ix in sa.inspect(op.get_bind()).get_indexes('dialer_contacts')}
    if NAME not in existing:
        op.create_index(NAME, 'dialer_contacts',
                        ['campaign_id', 'status', sa.text('priority DESC'), 'next_due', 'id'])


def downgrade() -> None:
    op.drop_index(NAME, table_name='dialer_contacts')
