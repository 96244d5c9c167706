"""The editorial calendar: planned slots per publication.

Revision ID: d38156ef6c20
Revises: fbd5204924a9
Create Date: 2026-11-24 19:16:07.801350
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "d38156ef6c20"
down_revision: str | None = "fbd5204924a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "publication",
            sa.Enum(
                "bulletin",
                "newsletter",
                name="publication",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("send_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "skipped",
                "missed",
                "dispatched",
                name="slot_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("deadline_reminded_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("morning_reminded_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint("publication", "number", name=op.f("uq_slots_publication")),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slots_publication"), ["publication"], unique=False)
        batch_op.create_index(batch_op.f("ix_slots_send_at"), ["send_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slots_send_at"))
        batch_op.drop_index(batch_op.f("ix_slots_publication"))

    op.drop_table("slots")
