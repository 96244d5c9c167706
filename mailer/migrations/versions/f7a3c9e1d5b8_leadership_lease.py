"""Leadership is a lease in the database (not an advisory lock or a lock file), and a
missed slot remembers whether staff were told.

Revision ID: f7a3c9e1d5b8
Revises: e5f1a7c3b9d2
Create Date: 2026-12-01 15:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision: str = "f7a3c9e1d5b8"
down_revision: str | None = "e5f1a7c3b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_tick_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("last_error_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leadership")),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("missed_alerted_at", UTCDateTime(timezone=True), nullable=True)
        )
    # Slots already missed were alerted (or not) by the old daemon: do not alert again.
    slots = sa.table(
        "slots",
        sa.column("status", sa.String()),
        sa.column("updated_at", UTCDateTime(timezone=True)),
        sa.column("missed_alerted_at", UTCDateTime(timezone=True)),
    )
    op.get_bind().execute(
        slots.update()
        .where(slots.c.status == "missed")
        .values(missed_alerted_at=slots.c.updated_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_column("missed_alerted_at")
    op.drop_table("leadership")
