"""Each delivery keeps the organisation its contact had when the outbox was filled.

Revision ID: d6b2e8f4a0c7
Revises: b7e3f1a9c5d2
Create Date: 2026-12-01 20:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d6b2e8f4a0c7"
down_revision: str | None = "b7e3f1a9c5d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("organisation_id", sa.Integer(), nullable=True))
    # Deliveries already made: their contact's organisation now (the best there is).
    op.execute(
        "UPDATE deliveries SET organisation_id = (SELECT organisation_id FROM contacts "
        "WHERE contacts.id = deliveries.contact_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("organisation_id")
