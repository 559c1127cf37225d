"""initial: dialer, callbacks, routing outbox

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A database made by an earlier Dialtone (each store ran create_all) already holds some
    # of these tables: adopt them as they are instead of failing on CREATE TABLE.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'callback_requests' not in existing:
        op.create_table('callback_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('call_id', sa.String(length=256), nullable=False),
        sa.Column('number', sa.String(length=64), nullable=False),
        sa.Column('slot', sa.String(length=64), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('context_json', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('callback_requests', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_callback_requests_call_id'), ['call_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_callback_requests_status'), ['status'], unique=False)
    if 'dialer_attempts' not in existing:
        op.create_table('dialer_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('e164', sa.String(length=20), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('dialled_at', sa.Float(), nullable=False),
        sa.Column('callback', sa.Boolean(), nullable=False),
        sa.Column('ended_at', sa.Float(), nullable=True),
        sa.Column('disposition', sa.String(length=32), nullable=True),
        sa.Column('live_answer', sa.Boolean(), nullable=False),
        sa.Column('abandoned', sa.Boolean(), nullable=False),
        sa.Column('amd', sa.String(length=16), nullable=True),
        sa.Column('time_to_agent_s', sa.Float(), nullable=True),
        sa.Column('message_played', sa.String(length=128), nullable=True),
        sa.Column('agent', sa.String(length=128), nullable=True),
        sa.Column('sip_status', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('dialer_attempts', schema=None) as batch_op:
            batch_op.create_index('ix_dialer_attempts_campaign', ['campaign_id', 'dialled_at'], unique=False)
            batch_op.create_index('ix_dialer_attempts_contact', ['contact_id'], unique=False)
    if 'dialer_campaign_zones' not in existing:
        op.create_table('dialer_campaign_zones',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('zones', sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint('campaign_id', 'zones')
        )
    if 'dialer_campaigns' not in existing:
        op.create_table('dialer_campaigns',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('settings_json', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name')
        )
    if 'dialer_dnc' not in existing:
        op.create_table('dialer_dnc',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('e164', sa.String(length=20), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('added_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('e164', 'campaign_id', name='uq_dialer_dnc')
        )
    if 'routing_outbox' not in existing:
        op.create_table('routing_outbox',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('owner', sa.String(length=256), nullable=False),
        sa.Column('message_id', sa.String(length=64), nullable=False),
        sa.Column('topic', sa.String(length=1024), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('retain', sa.Boolean(), nullable=False),
        sa.Column('response_topic', sa.String(length=1024), nullable=True),
        sa.Column('correlation', sa.LargeBinary(), nullable=True),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('routing_outbox', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_routing_outbox_owner'), ['owner'], unique=False)
    if 'dialer_contacts' not in existing:
        op.create_table('dialer_contacts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('row', sa.Integer(), nullable=False),
        sa.Column('fields_json', sa.Text(), nullable=False),
        sa.Column('timezone', sa.String(length=64), nullable=True),
        sa.Column('language', sa.String(length=16), nullable=True),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('disposition', sa.String(length=32), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('phone_pos', sa.Integer(), nullable=False),
        sa.Column('next_due', sa.Float(), nullable=False),
        sa.Column('locked_until', sa.Float(), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=True),
        sa.Column('lease_until', sa.Float(), nullable=False),
        sa.Column('lease_attempt', sa.Integer(), nullable=True),
        sa.Column('callback_at', sa.Float(), nullable=True),
        sa.Column('callback_until', sa.Float(), nullable=True),
        sa.Column('callback_source', sa.String(length=16), nullable=True),
        sa.Column('callback_request', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['dialer_campaigns.id'], ),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('dialer_contacts', schema=None) as batch_op:
            batch_op.create_index('ix_dialer_contacts_callback', ['campaign_id', 'callback_at'], unique=False)
            batch_op.create_index('ix_dialer_contacts_select', ['campaign_id', 'status', 'next_due'], unique=False)
    if 'dialer_contact_phones' not in existing:
        op.create_table('dialer_contact_phones',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=False),
        sa.Column('e164', sa.String(length=20), nullable=False),
        sa.Column('zones', sa.String(length=256), nullable=False),
        sa.Column('invalid', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['dialer_contacts.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('campaign_id', 'e164', name='uq_dialer_phone_campaign_e164')
        )
        with op.batch_alter_table('dialer_contact_phones', schema=None) as batch_op:
            batch_op.create_index('ix_dialer_phones_contact', ['contact_id', 'position'], unique=False)
            batch_op.create_index('ix_dialer_phones_e164', ['e164'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dialer_contact_phones', schema=None) as batch_op:
        batch_op.drop_index('ix_dialer_phones_e164')
        batch_op.drop_index('ix_dialer_phones_contact')

    op.drop_table('dialer_contact_phones')
    with op.batch_alter_table('dialer_contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_dialer_contacts_select')
        batch_op.drop_index('ix_dialer_contacts_callback')

    op.drop_table('dialer_contacts')
    with op.batch_alter_table('routing_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_outbox_owner'))

    op.drop_table('routing_outbox')
    op.drop_table('dialer_dnc')
    op.drop_table('dialer_campaigns')
    op.drop_table('dialer_campaign_zones')
    with op.batch_alter_table('dialer_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_dialer_attempts_contact')
        batch_op.drop_index('ix_dialer_attempts_campaign')

    op.drop_table('dialer_attempts')
    with op.batch_alter_table('callback_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_requests_status'))
        batch_op.drop_index(batch_op.f('ix_callback_requests_call_id'))

    op.drop_table('callback_requests')
