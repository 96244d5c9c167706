"""The outbox (one delivery per issue and contact), bounce events, send times on issues.

Revision ID: fbd5204924a9
Revises: 59bb728933eb
Create Date: 2026-11-24 18:04:51.447988
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "fbd5204924a9"
down_revision: str | None = "59bb728933eb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "claimed",
                "sent",
                "deferred",
                "failed",
                "suppressed",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("in_doubt", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", mailer.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.String(length=1000), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_deliveries_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_deliveries_issue_id_issues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("issue_id", "contact_id", name=op.f("uq_deliveries_issue_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_outbox", ["issue_id", "status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "permanent",
                "temporary",
                "complaint",
                name="bounce_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("diagnostic", sa.String(length=1000), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_bounce_events_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_bounce_events_delivery_id_deliveries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_events")),
    )
    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bounce_events_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bounce_events_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bounce_events_email_hash"), ["email_hash"], unique=False
        )

    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("send_started_at", mailer.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("send_finished_at", mailer.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("send_finished_at")
        batch_op.drop_column("send_started_at")

    with op.batch_alter_table("bounce_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bounce_events_email_hash"))
        batch_op.drop_index(batch_op.f("ix_bounce_events_delivery_id"))
        batch_op.drop_index(batch_op.f("ix_bounce_events_contact_id"))

    op.drop_table("bounce_events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_outbox")
        batch_op.drop_index(batch_op.f("ix_deliveries_contact_id"))

    op.drop_table("deliveries")
