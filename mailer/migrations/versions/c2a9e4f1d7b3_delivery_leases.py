"""Claims are leases: each claimed delivery has an expiry that its sender renews.

Rows claimed before this revision get a lease of five minutes from their claim, as the
old claim timeout allowed them. (Their sender kept no hand-over journal, so if they are
taken back they are all in doubt, as before.)

Revision ID: c2a9e4f1d7b3
Revises: b7c41e2a9d10
Create Date: 2026-12-01 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision: str = "c2a9e4f1d7b3"
down_revision: str | None = "b7c41e2a9d10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_expires_at", UTCDateTime(timezone=True), nullable=True)
        )
    deliveries = sa.table(
        "deliveries",
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("claimed_at", UTCDateTime(timezone=True)),
        sa.column("lease_expires_at", UTCDateTime(timezone=True)),
    )
    connection = op.get_bind()
    claimed = connection.execute(
        sa.select(deliveries.c.id, deliveries.c.claimed_at).where(
            deliveries.c.status == "claimed", deliveries.c.claimed_at.is_not(None)
        )
    ).all()
    for delivery_id, claimed_at in claimed:
        connection.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(lease_expires_at=claimed_at + timedelta(minutes=5))
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
